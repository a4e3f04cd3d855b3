/**
 * Efficient-CapsNet's primary capsules (Mazzia, Salvetti, Chiaberge 2021,
 * Methods): a depthwise convolution of the backbone's last maps, whose
 * output channels are cut into `dim`-D capsules at every output position and
 * squashed with Efficient-CapsNet's squash. The depthwise kernel is as large
 * as the maps it reads (9x9 on the MNIST model's 9x9x128), so each of its
 * 128 channels sums one whole map, and 128 channels make 16 capsules of 8-D.
 *
 * Layout: channel c = capsule * dim + d at each position; capsule index =
 * (y * W + x) * (channels / dim) + c / dim.
 */
import * as tf from '@tensorflow/tfjs';
import { efficientSquash } from '../capsules/squash.js';
import { DepthwiseConv2D, type DepthwiseConv2DConfig } from './depthwiseConv2d.js';
import type { Rng } from '../util/rng.js';
import type { Shape } from './layer.js';

export interface EfficientPrimaryCapsulesConfig extends DepthwiseConv2DConfig {
  /** Dimension of each capsule; the convolution's channels must be a multiple of it. */
  dim: number;
}

export class EfficientPrimaryCapsules extends DepthwiseConv2D<EfficientPrimaryCapsulesConfig> {
  static override readonly className: string = 'EfficientPrimaryCapsules';

  /** The depthwise convolution's output [batch, height, width, channels], known once built. */
  convolutionShape: [number | null, number, number, number] = [null, 0, 0, 0];

  protected override createWeights(inputShape: Shape, rng: Rng): void {
    super.createWeights(inputShape, rng);
    this.convolutionShape = this.convShape(inputShape);
  }

  /** [batch, capsules, dim]. */
  override computeOutputShape(inputShape: Shape): Shape {
    const [b, oh, ow, channels] = this.convShape(inputShape);
    const { dim } = this.config;
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`${this.name}: dim must be a positive integer, got ${dim}`);
    if (channels % dim !== 0) throw new Error(`${this.name}: ${channels} channels do not split into ${dim}-D capsules`);
    return [b, (oh * ow * channels) / dim, dim];
  }

  /** x [batch, h, w, channels] -> squashed capsules [batch, capsules, dim]. */
  override call(x: tf.Tensor4D): tf.Tensor3D {
    const { dim } = this.config;
    return tf.tidy(() => {
      const y = this.convolve(x);
      return efficientSquash(tf.reshape(y, [y.shape[0], -1, dim]) as tf.Tensor3D);
    });
  }
}
