/**
 * Class capsules ("Matrix capsules with EM routing", section 4): one capsule
 * per class, receiving votes from every child capsule of the last
 * convolutional capsule layer. The transformation matrix depends only on the
 * child's type (it is shared across positions), so the votes alone do not say
 * where a part was; coordinate addition puts that back: the scaled (row,
 * column) centre of each child's receptive field is added to the first two
 * entries of the right-hand column of its vote (pose entries 3 and 7).
 * EM routing then normalises each child's assignments over the classes.
 */
import * as tf from '@tensorflow/tfjs';
import { emRouting, emRoutingReference, type EmRoutingResult } from '../capsules/emRouting.js';
import type { Rng } from '../util/rng.js';
import { calibrateBetaU, layerRoutingOptions, type EmRoutingConfig } from '../capsules/emSettings.js';
import { Layer, type Shape } from './layer.js';
import { matrixVotes, POSE_DIM, POSE_SIZE } from '../capsules/matrixVotes.js';
import type { MatrixCapsules } from './matrixCapsules.js';
import { tidyRecord } from '../util/tidy.js';

/**
 * Where child position (y, x) sits in the input image: its receptive field's
 * centre is (offset + stride * (y, x)) pixels, divided by the image size so
 * that coordinates lie in [0, 1].
 */
export interface CoordinateAddition {
  offset: [number, number];
  stride: [number, number];
  imageSize: [number, number];
}

export interface ClassCapsulesConfig extends Record<string, unknown> {
  classes: number;
  routing: EmRoutingConfig;
  /** null turns coordinate addition off. */
  coordinateAddition: CoordinateAddition | null;
  initStddev?: number;
}

export interface ClassCapsulesOutput {
  /** [batch, classes, 16]. */
  poses: tf.Tensor3D;
  /** [batch, classes]. */
  activations: tf.Tensor2D;
  /** [batch, 1, H*W*T, classes]. */
  routing: tf.Tensor4D;
  /** With `history`: the routing of every iteration, first to last. */
  routingHistory?: tf.Tensor4D[];
}

export class ClassCapsules extends Layer<ClassCapsulesConfig> {
  static override readonly className = 'ClassCapsules';
  W!: tf.Variable;
  betaU!: tf.Variable;
  betaA!: tf.Variable;

  /** The layer's EM routing settings (iterations, schedule, floors), as configured. */
  get routing(): EmRoutingConfig {
    return this.config.routing;
  }
  /** The coordinates added to the votes, [H*W, 16], or null (set when built; the ONNX export reads them). */
  coords: Float32Array | null = null;
  /** The child grid [height, width, types]. */
  inGrid: [number, number, number] = [0, 0, 0];

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const [, h, w, inTypes] = inputShape as number[];
    const { classes, initStddev = 0.5 } = this.config;
    this.W = this.addWeight('W', [inTypes, classes, POSE_SIZE, POSE_SIZE], { kind: 'normal', stddev: initStddev }, rng);
    this.betaU = this.addWeight('beta_u', [classes], { kind: 'zeros' }, rng);
    this.betaA = this.addWeight('beta_a', [classes], { kind: 'zeros' }, rng);
    this.inGrid = [h, w, inTypes];
    this.coords = this.coordinateOffsets(h, w);
  }

  /** The constant added to the votes, [H*W, 16] (zero but for entries 3 and 7), or null. */
  private coordinateOffsets(h: number, w: number): Float32Array | null {
    const c = this.config.coordinateAddition;
    if (!c) return null;
    const out = new Float32Array(h * w * POSE_DIM);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * POSE_DIM;
        out[o + POSE_SIZE - 1] = (c.offset[0] + c.stride[0] * y) / c.imageSize[0]; // row 0, last column
        out[o + 2 * POSE_SIZE - 1] = (c.offset[1] + c.stride[1] * x) / c.imageSize[1]; // row 1, last column
      }
    }
    return out;
  }

  computeOutputShape(inputShape: Shape): Shape {
    return [inputShape[0], this.config.classes, POSE_SIZE, POSE_SIZE];
  }

  /**
   * The votes [batch, H*W*T, classes, 16] of every child (ordered row,
   * column, type) for every class, coordinates added.
   */
  votes(input: MatrixCapsules): tf.Tensor4D {
    const [h, w, t] = this.inGrid;
    const [b] = input.activations.shape;
    if (input.activations.shape[1] !== h || input.activations.shape[2] !== w || input.activations.shape[3] !== t) {
      throw new Error(`${this.name}: expects a ${h}x${w} grid of ${t} capsule types, got [${input.activations.shape}]`);
    }
    return tf.tidy(() => {
      // Shared W: positions play the role of the batch in the vote product.
      const M = tf.reshape(input.poses, [b, h * w, t, POSE_DIM]) as tf.Tensor4D;
      let votes = matrixVotes(M, this.W); // [b, H*W, T, E, 16]
      if (this.coords) votes = tf.add(votes, tf.tensor(this.coords, [1, h * w, 1, 1, POSE_DIM])) as tf.Tensor5D;
      return tf.reshape(votes, [b, h * w * t, this.config.classes, POSE_DIM]) as tf.Tensor4D;
    });
  }

  private route(input: MatrixCapsules, iterations: number, reference: boolean, history = false): EmRoutingResult {
    const [h, w, t] = this.inGrid;
    const [b] = input.activations.shape;
    const E = this.config.classes;
    return tidyRecord(() => {
      const votes = this.votes(input);
      const route = reference ? emRoutingReference : emRouting;
      return route(tf.reshape(votes, [b, 1, h * w * t, E, POSE_DIM]) as tf.Tensor5D, tf.reshape(input.activations, [b, 1, h * w * t]) as tf.Tensor3D, layerRoutingOptions(this.config.routing, this.betaU, this.betaA, iterations, { history }));
    });
  }

  /** Centre the routing cost on `input` (see calibrateBetaU). */
  calibrate(input: MatrixCapsules): void {
    calibrateBetaU(this.betaU, () => this.route(input, this.config.routing.iterations, true));
  }

  /** `history` also returns the routing of every iteration (for inspection; runs the reference). */
  call(input: MatrixCapsules, iterations = this.config.routing.iterations, history = false): ClassCapsulesOutput {
    const [b] = input.activations.shape;
    const E = this.config.classes;
    return tf.tidy(() => {
      const r = this.route(input, iterations, false, history);
      return {
        poses: tf.reshape(r.poses, [b, E, POSE_DIM]) as tf.Tensor3D,
        activations: tf.reshape(r.activations, [b, E]) as tf.Tensor2D,
        routing: r.routing,
        ...(r.routingHistory ? { routingHistory: r.routingHistory } : {}),
      };
    });
  }
}
