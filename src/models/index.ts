/** Registers the built-in architectures. Import this module before building or loading models. */
import { CapsNet, CAPSNET_PRESETS, capsNetConfig } from './capsnet.js';
import { CnnBaseline, CNN_PRESETS, cnnConfig } from './cnn.js';
import { EmCapsNet, EM_CAPSNET_PRESETS, emCapsNetConfig } from './emCapsNet.js';
import { EfficientCapsNet, EFFICIENT_CAPSNET_PRESETS, efficientCapsNetConfig } from './efficientCapsNet.js';
import { registerArchitecture } from './registry.js';

registerArchitecture({
  name: 'capsnet',
  description: 'CapsNet with dynamic routing (Sabour et al. 2017)',
  presets: CAPSNET_PRESETS,
  defaultPreset: 'paper',
  quickPreset: 'small',
  configFor: capsNetConfig,
  settings: {
    routingIterations: (n) => ({ digit: { routingIterations: n } }),
    reconstructionWeight: (w) => ({ loss: { reconstructionWeight: w } }),
  },
  separateSchedule: false,
  create: (config, seed) => new CapsNet(config, seed),
});

registerArchitecture({
  name: 'cnn',
  description: 'CNN baseline of Sabour et al. 2017 (3 conv layers, 2 FC layers, dropout, softmax)',
  presets: CNN_PRESETS,
  defaultPreset: 'paper',
  quickPreset: 'small',
  configFor: cnnConfig,
  settings: { routingIterations: null, reconstructionWeight: null },
  separateSchedule: false,
  create: (config, seed) => new CnnBaseline(config, seed),
});

registerArchitecture({
  name: 'em',
  description: 'Matrix capsules with EM routing (Hinton, Sabour, Frosst 2018)',
  presets: EM_CAPSNET_PRESETS,
  defaultPreset: 'paper',
  quickPreset: 'small',
  configFor: emCapsNetConfig,
  settings: { routingIterations: (n) => ({ routing: { iterations: n } }), reconstructionWeight: null },
  // EM routing trains at a larger learning rate and in smaller batches than
  // CapsNet and the CNN, and on MNIST two EM iterations train where three
  // stall (docs/em-capsules-mnist.md).
  separateSchedule: true,
  create: (config, seed) => new EmCapsNet(config, seed),
});

registerArchitecture({
  name: 'efficient',
  description: 'Efficient-CapsNet with self-attention routing (Mazzia, Salvetti, Chiaberge 2021)',
  presets: EFFICIENT_CAPSNET_PRESETS,
  defaultPreset: 'mnist',
  quickPreset: 'mnist',
  configFor: efficientCapsNetConfig,
  settings: { routingIterations: null, reconstructionWeight: (w) => ({ loss: { reconstructionWeight: w } }) },
  separateSchedule: false,
  create: (config, seed) => new EfficientCapsNet(config, seed),
});

export * from './registry.js';
export { EmCapsNet, emCapsNetConfig, EM_CAPSNET_PRESETS, type EmCapsNetConfig, type EmCapsNetPreset, type EmCapsNetOutput, type EmCapsNetForwardOptions } from './emCapsNet.js';
export { CnnBaseline, cnnConfig, CNN_PRESETS, type CnnConfig } from './cnn.js';
export { EfficientCapsNet, efficientCapsNetConfig, EFFICIENT_CAPSNET_PRESETS, type EfficientCapsNetConfig, type EfficientCapsNetPreset, type EfficientCapsNetOutput } from './efficientCapsNet.js';
export { CapsNet, capsNetConfig, CAPSNET_PRESETS, type CapsNetConfig, type CapsNetPreset, type CapsNetOutput, type CapsNetForwardOptions } from './capsnet.js';
export type { Inspection, InspectionLayout, CapsuleGrid, RoutingPart, PartReference } from './inspection.js';
export { PAPERS } from './inspection.js';
export type { ClassifierModel, ModelOutput, ForwardOptions, LossResult, LayerSummary, TrainingProgress, CapsuleDecoder, ModelConfig } from './model.js';
export { LayeredModel } from './model.js';
