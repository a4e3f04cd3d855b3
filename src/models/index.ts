/** Registers the built-in model types. Import this module before building or loading models. */
import { CapsNet, CAPSNET_PRESETS, capsNetConfig, type CapsNetConfig, type CapsNetPreset } from './capsnet.js';
import { CnnBaseline, CNN_PRESETS, cnnConfig, type CnnConfig, type CnnPreset } from './cnn.js';
import { EmCapsNet, EM_CAPSNET_PRESETS, emCapsNetConfig, type EmCapsNetConfig, type EmCapsNetPreset } from './emCapsNet.js';
import { registerModelType } from './registry.js';

registerModelType({
  name: 'capsnet',
  description: 'CapsNet with dynamic routing (Sabour et al. 2017)',
  presets: CAPSNET_PRESETS,
  defaultPreset: 'paper',
  configFor: (preset, overrides) => capsNetConfig(preset as CapsNetPreset, overrides as never) as unknown as Record<string, unknown>,
  create: (config, seed) => new CapsNet(config as unknown as CapsNetConfig, seed),
});

registerModelType({
  name: 'cnn',
  description: 'CNN baseline of Sabour et al. 2017 (3 conv layers, 2 FC layers, dropout, softmax)',
  presets: CNN_PRESETS,
  defaultPreset: 'paper',
  configFor: (preset, overrides) => cnnConfig(preset as CnnPreset, overrides as never) as unknown as Record<string, unknown>,
  create: (config, seed) => new CnnBaseline(config as unknown as CnnConfig, seed),
});

registerModelType({
  name: 'em',
  description: 'Matrix capsules with EM routing (Hinton, Sabour, Frosst 2018)',
  presets: EM_CAPSNET_PRESETS,
  defaultPreset: 'paper',
  configFor: (preset, overrides) => emCapsNetConfig(preset as EmCapsNetPreset, overrides as never) as unknown as Record<string, unknown>,
  create: (config, seed) => new EmCapsNet(config as unknown as EmCapsNetConfig, seed),
});

export * from './registry.js';
export { EmCapsNet, emCapsNetConfig, EM_CAPSNET_PRESETS, type EmCapsNetConfig, type EmCapsNetPreset, type EmCapsNetOutput, type EmCapsNetForwardOptions } from './emCapsNet.js';
export { CnnBaseline, cnnConfig, CNN_PRESETS, type CnnConfig } from './cnn.js';
export { CapsNet, capsNetConfig, CAPSNET_PRESETS, type CapsNetConfig, type CapsNetPreset, type CapsNetOutput, type CapsNetForwardOptions } from './capsnet.js';
export type { ClassifierModel, ModelOutput, ForwardOptions, LossResult, LayerSummary, TrainingProgress } from './model.js';
export { LayeredModel } from './model.js';
