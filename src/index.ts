/**
 * capsnet: capsule networks on TensorFlow.js.
 *
 * This entry runs in Node and in the browser. File reading, the native
 * engine and the CLI live in `capsnet/node`.
 *
 * @module capsnet
 */
export { squash, squashReference, capsuleLength, efficientSquash, efficientSquashReference } from './capsules/squash.js';
export { selfAttentionRouting, selfAttentionRoutingReference, type SelfAttentionRoutingResult } from './capsules/selfAttentionRouting.js';
export { dynamicRouting, dynamicRoutingReference, type DynamicRoutingOptions, type DynamicRoutingResult } from './capsules/dynamicRouting.js';
export { predictionVectors, predictionVectorsReference } from './capsules/predictionVectors.js';
export { emRouting, emRoutingReference, type EmRoutingOptions, type EmRoutingResult } from './capsules/emRouting.js';
export { unfoldChildren, foldChildren, type EmGeometry } from './capsules/emGeometry.js';
export { inverseTemperatureSchedule, DEFAULT_INVERSE_TEMPERATURE, DEFAULT_VARIANCE_FLOOR, type EmRoutingConfig, type InverseTemperature } from './capsules/emSettings.js';
export { FUSED_KERNELS, setFusedKernelsEnabled, fusedKernelsEnabled, stopGradient } from './backend/fused.js';
export { marginLoss, toTargets, type MarginLossOptions } from './losses/marginLoss.js';
export { reconstructionLoss, PAPER_RECONSTRUCTION_WEIGHT } from './losses/reconstructionLoss.js';
export { spreadLoss, spreadMargin, SPREAD_MARGIN_START, SPREAD_MARGIN_END } from './losses/spreadLoss.js';
export { Rng, type RngState } from './util/rng.js';
export * from './models/index.js';
export { modelFromArtifacts, modelToArtifacts, loadModelFromUrl, encodeWeights, decodeWeights, type ModelJson, type WeightEncoding } from './models/serialization.js';
export { Layer, type Param } from './layers/layer.js';
export { Conv2D, convOutputSize } from './layers/conv2d.js';
export { Dense } from './layers/dense.js';
export { PrimaryCapsules } from './layers/primaryCapsules.js';
export { DigitCapsules } from './layers/digitCapsules.js';
export { PrimaryMatrixCapsules } from './layers/primaryMatrixCapsules.js';
export { ConvCapsules } from './layers/convCapsules.js';
export { ClassCapsules, type CoordinateAddition } from './layers/classCapsules.js';
export { matrixVotes } from './capsules/matrixVotes.js';
export type { MatrixCapsules } from './layers/matrixCapsules.js';
export { BatchNormalization, batchNormTraining, batchNormTrainingReference, type BatchNormalizationConfig, type BatchNormTrainingResult } from './layers/batchNormalization.js';
export { InstanceNormalization, type InstanceNormalizationConfig } from './layers/instanceNormalization.js';
export { DepthwiseConv2D, type DepthwiseConv2DConfig } from './layers/depthwiseConv2d.js';
export { EfficientPrimaryCapsules, type EfficientPrimaryCapsulesConfig } from './layers/efficientPrimaryCapsules.js';
export { SelfAttentionCapsules, type SelfAttentionCapsulesConfig } from './layers/selfAttentionCapsules.js';
export { parseIdx, encodeIdx, type IdxArray } from './data/idx.js';
export { type ImageDataset, take, validateDataset } from './data/dataset.js';
export { makeBatch, type Batch } from './data/batches.js';
export { mnistPreprocess, resizeArea, borderMean, type MnistPreprocessOptions } from './data/preprocess.js';
export { imagePreparation, parseImagePreparation, type ImagePreparation } from './data/preparation.js';
export { Adam, adamUpdateReference, type AdamState } from './training/adam.js';
export { WeightAverage } from './training/weightAverage.js';
export { evaluate, predictScores, type EvalResult } from './training/evaluate.js';
export { Progress } from './util/progress.js';
