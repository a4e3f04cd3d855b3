/**
 * Fashion-MNIST (Xiao et al. 2017): Zalando's 28x28 clothing images in the
 * same IDX format and split sizes as MNIST. Debian's `dataset-fashion-mnist`
 * installs them in /usr/share/datasets/fashion-mnist; CAPSNET_FASHION_MNIST_DIR
 * points elsewhere.
 */
import { join } from 'node:path';
import type { ImageDataset } from './dataset.js';
import { loadIdxPair } from './files.js';
import type { Split } from './mnist.js';

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export function fashionMnistDir(): string {
  return process.env.CAPSNET_FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
}

export function loadFashionMnist(split: Split): ImageDataset {
  const dir = fashionMnistDir();
  const prefix = split === 'train' ? 'train' : 't10k';
  try {
    return loadIdxPair(join(dir, `${prefix}-images-idx3-ubyte.gz`), join(dir, `${prefix}-labels-idx1-ubyte.gz`), {
      name: `fashion-mnist-${split}`,
      numClasses: 10,
      classNames: FASHION_MNIST_CLASSES,
    });
  } catch (e) {
    if ((e as Error).message.startsWith('file not found')) {
      throw new Error(`Fashion-MNIST not found in ${dir}: install Debian's dataset-fashion-mnist or set CAPSNET_FASHION_MNIST_DIR (${(e as Error).message})`);
    }
    throw e;
  }
}
