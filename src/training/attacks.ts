/**
 * White-box adversarial attacks on any ClassifierModel, as in section 6 of
 * "Matrix capsules with EM routing": the fast gradient sign method (FGSM,
 * Goodfellow et al. 2015) and its iterative version (BIM, Kurakin et al.
 * 2017), untargeted (move away from the true class) and targeted (move
 * towards a chosen wrong class).
 *
 *   FGSM   x' = clip(x + s eps sign(grad_x L(x, c)))
 *   BIM    x_0 = x;  x_{k+1} = clip_{x,eps}(x_k + s alpha sign(grad_x L(x_k, c)))
 *
 * with c the true class and s = +1 (untargeted), or c the target and s = -1
 * (targeted); clip keeps pixels in their range (and BIM within eps of x).
 *
 * The loss L. Models score classes differently (capsule lengths, EM
 * activations, softmax probabilities), so by default the attacks use one
 * loss for all of them: the cross-entropy of the model's class distribution,
 * softmax(logits) when the model outputs logits (the CNN) and otherwise its
 * scores normalised to sum to one (p_k = s_k / sum_j s_j, the softmax of
 * log s). Unlike the models' own margin and spread losses, it never has a
 * zero gradient on confidently classified examples, which would leave FGSM
 * with no direction at all and make a model look robust for the wrong reason.
 * `loss: 'model'` uses the model's own training loss instead (with its final
 * margin).
 */
import * as tf from '@tensorflow/tfjs';
import type { ClassifierModel, ModelOutput } from '../models/model.js';
import { Rng } from '../util/rng.js';

export type AttackMethod = 'fgsm' | 'bim';
export type AttackLoss = 'ce' | 'model';

export interface AttackOptions {
  method: AttackMethod;
  epsilon: number;
  /** Class per example to move towards; untargeted when absent. */
  targets?: Int32Array;
  loss?: AttackLoss;
  /** BIM iterations (default 10) and step size (default 2.5 eps / iterations). */
  iterations?: number;
  stepSize?: number;
  /** Pixel range to clip to, or null for none (standardised inputs). Default [0, 1]. */
  clip?: [number, number] | null;
}

/** The attack loss of a batch: mean over examples of -log p(class) (or the model's loss). */
export function attackLoss(model: ClassifierModel, x: tf.Tensor4D, classes: Int32Array, loss: AttackLoss = 'ce'): tf.Scalar {
  return tf.tidy(() => {
    const labels = tf.tensor1d(classes, 'int32');
    const targets = tf.oneHot(labels, model.numClasses).toFloat() as tf.Tensor2D;
    const out: ModelOutput = model.forward(x, { training: false, labels, decode: loss === 'model' ? 'labels' : 'none' });
    if (loss === 'model') return model.loss(out, x, targets, { fraction: 1, rng: new Rng(0) }).total;
    const logits = (out.logits as tf.Tensor2D | undefined) ?? tf.log(tf.maximum(out.scores, 1e-30));
    return tf.losses.softmaxCrossEntropy(targets, logits) as tf.Scalar;
  });
}

/** Sign of the attack loss's gradient with respect to the input, oriented for the attack. */
function signedGradient(model: ClassifierModel, x: tf.Tensor4D, classes: Int32Array, targeted: boolean, loss: AttackLoss): tf.Tensor4D {
  return tf.tidy(() => {
    const g = tf.grad((input: tf.Tensor) => attackLoss(model, input as tf.Tensor4D, classes, loss))(x);
    const s = tf.sign(g);
    return (targeted ? tf.neg(s) : s) as tf.Tensor4D;
  });
}

function clipTo(x: tf.Tensor, clip: [number, number] | null): tf.Tensor {
  return clip ? tf.clipByValue(x, clip[0], clip[1]) : x;
}

function check(o: AttackOptions): void {
  if (!(o.epsilon >= 0 && Number.isFinite(o.epsilon))) throw new Error(`attack: epsilon must be a non-negative number, got ${o.epsilon}`);
  if (o.iterations !== undefined && (!Number.isInteger(o.iterations) || o.iterations < 1)) throw new Error(`attack: iterations must be a positive integer, got ${o.iterations}`);
}

/** Adversarial versions of the images x [batch, h, w, c] whose true classes are `labels`. */
export function adversarialBatch(model: ClassifierModel, x: tf.Tensor4D, labels: Int32Array, o: AttackOptions): tf.Tensor4D {
  check(o);
  const targeted = o.targets !== undefined;
  const classes = o.targets ?? labels;
  const clip = o.clip === undefined ? [0, 1] as [number, number] : o.clip;
  const loss = o.loss ?? 'ce';
  if (o.epsilon === 0) return tf.clone(x);
  if (o.method === 'fgsm') {
    return tf.tidy(() => clipTo(tf.add(x, tf.mul(signedGradient(model, x, classes, targeted, loss), o.epsilon)), clip) as tf.Tensor4D);
  }
  const iterations = o.iterations ?? 10;
  const alpha = o.stepSize ?? (2.5 * o.epsilon) / iterations;
  let adv = tf.clone(x);
  for (let k = 0; k < iterations; k++) {
    const next = tf.tidy(() => {
      const stepped = tf.add(adv, tf.mul(signedGradient(model, adv, classes, targeted, loss), alpha));
      const inBall = tf.minimum(tf.maximum(stepped, tf.sub(x, o.epsilon)), tf.add(x, o.epsilon));
      return clipTo(inBall, clip) as tf.Tensor4D;
    });
    adv.dispose();
    adv = next;
  }
  return adv;
}

/**
 * FGSM for several epsilons at once: its direction is the gradient at x
 * alone, so one backward pass serves every epsilon.
 */
export function fgsmSweep(model: ClassifierModel, x: tf.Tensor4D, labels: Int32Array, epsilons: number[], options: { targets?: Int32Array; loss?: AttackLoss; clip?: [number, number] | null } = {}): tf.Tensor4D[] {
  const clip = options.clip === undefined ? [0, 1] as [number, number] : options.clip;
  const targeted = options.targets !== undefined;
  const dir = signedGradient(model, x, options.targets ?? labels, targeted, options.loss ?? 'ce');
  const out = epsilons.map((e) => tf.tidy(() => clipTo(tf.add(x, tf.mul(dir, e)), clip) as tf.Tensor4D));
  dir.dispose();
  return out;
}

/** A wrong class for every example, drawn uniformly from the other classes with a seeded Rng. */
export function randomTargets(labels: Int32Array, numClasses: number, rng: Rng): Int32Array {
  return Int32Array.from(labels, (l) => {
    const t = rng.int(0, numClasses - 2);
    return t >= l ? t + 1 : t;
  });
}

/** argmax of the scores of each row. */
export function predict(model: ClassifierModel, x: tf.Tensor4D): Int32Array {
  return tf.tidy(() => tf.argMax(model.forward(x, { training: false, decode: 'none' }).scores, 1).dataSync() as Int32Array);
}
