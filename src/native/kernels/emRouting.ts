/**
 * The fused EM routing kernels of src/backend/fused.ts on the addon
 * (emRouting.cc over emRoutingCore.h): Procedure 1 of "Matrix capsules with
 * EM routing" forward, and the gradients of its poses and activations with
 * respect to the votes, the child activations, beta_u and beta_a. Attributes
 * come from emKernelAttrs in src/capsules/emSettings.ts, each by name, so the
 * reference and these kernels read the same settings.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { EmChildGeometry, EmRoutingSettings } from '../../backend/kernelTable.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, type KernelArgs, type FusedKernels } from './kernelUtil.js';

interface EmShape {
  B: number;
  P: number;
  N: number;
  J: number;
  D: number;
}

interface EmInputs {
  votes: Float32Array;
  activations: Float32Array;
  betaU: Float32Array;
  betaA: Float32Array;
}

/**
 * Attribute `geometry` of emKernelAttrs, field by field, or null when it is
 * absent; fails naming a field that is missing, not a number, or unknown.
 * The addon checks the values again (positive integers that fit the votes).
 */
function childGeometry(kernel: string, attrs: Record<string, unknown>): EmChildGeometry | null {
  const g = attrs.geometry;
  if (g === undefined) return null;
  if (typeof g !== 'object' || g === null || Array.isArray(g)) fail(kernel, `geometry must be an object of named numbers, got ${JSON.stringify(g)}`);
  const fields = g as Record<string, unknown>;
  const value = (name: keyof EmChildGeometry): number => {
    const x = fields[name];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(kernel, `geometry.${name} must be a finite number, got ${String(x)}`);
    return x;
  };
  const geometry: EmChildGeometry = {
    inHeight: value('inHeight'),
    inWidth: value('inWidth'),
    inTypes: value('inTypes'),
    kernel: value('kernel'),
    stride: value('stride'),
    outHeight: value('outHeight'),
    outWidth: value('outWidth'),
  };
  const unknown = Object.keys(fields).find((name) => !Object.hasOwn(geometry, name));
  if (unknown !== undefined) fail(kernel, `geometry has unknown field '${unknown}'`);
  return geometry;
}

/**
 * The settings both entries share, from the attributes of emKernelAttrs: the
 * sizes, the routing settings, and the child geometry when there is one.
 */
function settings(kernel: string, s: EmShape, attrs: Record<string, unknown>, inputs: EmInputs): EmRoutingSettings {
  const lambdas = attrs.lambdas as number[] | undefined;
  if (!Array.isArray(lambdas) || lambdas.length !== Number(attrs.iterations)) fail(kernel, `lambdas must hold one value per iteration, got ${String(lambdas)}`);
  const num = (name: string) => {
    const x = Number(attrs[name]);
    if (!Number.isFinite(x)) fail(kernel, `${name} must be a finite number, got ${String(attrs[name])}`);
    return x;
  };
  const geometry = childGeometry(kernel, attrs);
  const shared = {
    ...inputs,
    batch: s.B,
    positions: s.P,
    slots: s.N,
    types: s.J,
    poseSize: s.D,
    lambdas: Float32Array.from(lambdas),
    varianceFloor: num('varianceFloor'),
    costScale: num('costScale'),
    logitBound: num('logitBound'),
    meanEps: num('meanEps'),
  };
  return geometry ? { ...shared, ...geometry } : shared;
}

/** The inputs both kernels share, checked against the votes' shape. */
function routingInputs(kernel: string, args: KernelArgs): { s: EmShape; inputs: EmInputs } {
  const v = args.inputs.votes;
  if (!v || v.shape.length !== 5) fail(kernel, `votes must have rank 5 [batch, P, N, J, D], got [${v?.shape}]`);
  const [B, P, N, J, D] = v.shape;
  if (P === 0 || N === 0 || J === 0 || D === 0) fail(kernel, `votes [${v.shape}] have an empty axis`);
  return {
    s: { B, P, N, J, D },
    inputs: {
      votes: f32Input(kernel, args, 'votes', [B, P, N, J, D]).v,
      activations: f32Input(kernel, args, 'activations', [B, P, N]).v,
      betaU: f32Input(kernel, args, 'betaU', [J]).v,
      betaA: f32Input(kernel, args, 'betaA', [J]).v,
    },
  };
}

export function fusedKernels(addon: NativeAddon): FusedKernels<'emRouting'> {
  const K = FUSED_KERNELS;
  return {
    emRouting: (args) => {
      const { s, inputs } = routingInputs(K.emRouting, args);
      const { B, P, N, J, D } = s;
      const poses = allocF32(B * P * J * D);
      const actOut = allocF32(B * P * J);
      const routing = allocF32(B * P * N * J);
      addon.emRouting({ ...settings(K.emRouting, s, args.attrs, inputs), poses, act: actOut, routing });
      return [output(args.backend, [B, P, J, D], 'float32', poses), output(args.backend, [B, P, J], 'float32', actOut), output(args.backend, [B, P, N, J], 'float32', routing)];
    },
    emRoutingGrad: (args) => {
      const { s, inputs } = routingInputs(K.emRoutingGrad, args);
      const { B, P, N, J, D } = s;
      const dPoses = f32Input(K.emRoutingGrad, args, 'dPoses', [B, P, J, D]);
      const dAct = f32Input(K.emRoutingGrad, args, 'dActivations', [B, P, J]);
      const dVotes = allocF32(B * P * N * J * D);
      const dActivations = allocF32(B * P * N);
      const dBetaU = allocF32(J);
      const dBetaA = allocF32(J);
      addon.emRoutingGrad({ ...settings(K.emRoutingGrad, s, args.attrs, inputs), dPoses: dPoses.v, dAct: dAct.v, dVotes, dActivations, dBetaU, dBetaA });
      return [
        output(args.backend, [B, P, N, J, D], 'float32', dVotes),
        output(args.backend, [B, P, N], 'float32', dActivations),
        output(args.backend, [J], 'float32', dBetaU),
        output(args.backend, [J], 'float32', dBetaA),
      ];
    },
  };
}
