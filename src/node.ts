/**
 * capsnet for Node: everything in the universal entry, plus file formats,
 * datasets on disk, training, checkpoints and backend selection (including
 * the native engine).
 *
 * @module capsnet/node
 */
export * from './index.js';
export { initBackend, useBackend, availableBackends, describeBackend, type BackendInfo, type BackendName } from './backend/node.js';
export { loadMnist, mnistFiles, type Split } from './data/mnist.js';
export { loadFashionMnist, FASHION_MNIST_CLASSES } from './data/fashionMnist.js';
export { loadIdxPair, readMaybeGzip } from './data/files.js';
export { loadModel, saveModel, resolveModelDir } from './models/files.js';
export { train, trainStep, type TrainData, type TrainHooks, type TrainResult } from './training/trainer.js';
export type { TrainOptions } from './training/options.js';
export { loadData, defaultCacheDir, type DataSpec, type DataSource, type NamedDataSource, type IdxDataSource, type UserDataSource, type LoadDataOptions } from './data/spec.js';
export { readCheckpoint, writeCheckpoint, hasCheckpoint, type TrainingState, type EpochMetrics } from './training/checkpoint.js';
