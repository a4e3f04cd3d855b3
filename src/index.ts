/**
 * capsnet: capsule networks on TensorFlow.js.
 *
 * This entry runs in Node and in the browser. File reading, the native
 * engine and the CLI live in `capsnet/node`.
 */
export { squash, squashReference, capsuleLength } from './capsules/squash.js';
export { dynamicRouting, dynamicRoutingReference, type DynamicRoutingOptions, type DynamicRoutingResult } from './capsules/dynamicRouting.js';
export { predictionVectors, predictionVectorsReference } from './capsules/predictionVectors.js';
export { FUSED_KERNELS, setFusedKernelsEnabled, fusedKernelsEnabled, stopGradient } from './capsules/fused.js';
export { marginLoss, toTargets, type MarginLossOptions } from './losses/marginLoss.js';
export { reconstructionLoss, PAPER_RECONSTRUCTION_WEIGHT } from './losses/reconstructionLoss.js';
export { Rng, type RngState } from './util/rng.js';
