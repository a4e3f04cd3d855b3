/**
 * capsnet viz: build the browser visualizer if needed, serve it on the
 * loopback interface and print the URL. The model runs in the browser.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { resolveModelDir } from '../models/files.js';
import { modelPathOrPretrained, pretrainedDir } from '../models/pretrained.js';
import { validateModelJson, type ModelJson } from '../models/serialization.js';
import { loadData, type DataSpec } from '../data/spec.js';
import { readStateFile } from '../training/checkpoint.js';
import { buildViz, DEFAULT_VIZ_OUT, ensureVizBuilt, pickSamples, shippedModels, type SampleFiles } from '../viz/build.js';
import { startVizServer } from '../viz/server.js';
import { commandSpec, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { DATA_FLAGS, dataFlags, loadOptions, oneSplitDataSpec, withModelDataset } from './dataFlags.js';

/** The data flags viz takes: where a model's test images are; size and channels come from the model. */
const VIZ_DATA_FLAGS = [
  { ...DATA_FLAGS.data, help: `test images for the --model, from your own data [default: the data a model trained with --data was trained on]: ${DATA_FLAGS.data.help.replace(/^your own data: /, '')}` },
  DATA_FLAGS['val-split'],
  { ...DATA_FLAGS['data-seed'], help: 'with --data and --val-split: seed of the split [default: the one the model recorded for that data, else 1]' },
  ...dataFlags('skip-invalid', 'cache-dir'),
];

export const vizSpec = commandSpec({
  name: 'viz',
  summary: 'Serve the interactive visualizer on localhost: the model runs live in your browser.',
  description:
    'Builds the browser app if it is missing or older than its sources (npm run build:viz writes the same static files), ' +
    'serves it on 127.0.0.1 and prints the URL. Without --model the page offers the shipped pretrained models. ' +
    'A model trained with --data gets test images from its own data (the training run records where they are; --data PATH names them), ' +
    'prepared as its training pictures were. Stop it with Ctrl-C.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    ...VIZ_DATA_FLAGS,
    { name: 'port', type: 'int', min: 0, max: 65535, default: 0, help: 'port on 127.0.0.1 (0: any free port)' },
    { name: 'rebuild', type: 'boolean', help: 'rebuild the app even when it is up to date' },
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet viz', 'capsnet viz --model runs/my-capsnet --port 8080', 'capsnet viz --pretrained mnist', 'capsnet viz --model runs/photos --data photos/'],
});

type VizFlags = ArgsOf<typeof vizSpec>['flags'];

/**
 * Where a model's own test images are: --data (with its split flags), else
 * the data its training run recorded (the checkpoint's training.json, with
 * the run's decoded-picture cache), else the source of its --val-split
 * (metadata.heldOut). Null for a model trained on a named dataset.
 */
function modelTestData(flags: VizFlags, modelDir: string, json: ModelJson): { spec: DataSpec; path: string } | null {
  const given = VIZ_DATA_FLAGS.map((f) => f.name).filter((k) => flags[k] !== undefined && flags[k] !== false);
  // Each of these is a --data source (kind 'user'): the path is the one to check for.
  const user = (spec: DataSpec) => (spec.source.kind === 'user' ? { spec, path: spec.source.path } : null);
  if (flags.data !== undefined) return user(oneSplitDataSpec(withModelDataset(flags, json)));
  if (given.length) throw new UsageError(`--${given[0]} goes with --data`);
  if (existsSync(join(modelDir, 'training.json'))) {
    const recorded = readStateFile(modelDir).options.data;
    // All of the test split: the run's limits chose what it trained and tested on, not what the page may show.
    if (recorded?.source.kind === 'user') return user({ source: recorded.source });
  }
  const held = json.metadata?.heldOut as { source?: unknown } | undefined;
  if (typeof held?.source === 'string') return user(oneSplitDataSpec(withModelDataset({ data: held.source }, json)));
  return null;
}

/** The model's test images for the page, or null (with the reason on stderr) when there are none to show. */
async function modelSamples(flags: VizFlags, modelDir: string, json: ModelJson): Promise<SampleFiles | null> {
  const testData = modelTestData(flags, modelDir, json);
  if (!testData) return null;
  const { spec, path } = testData;
  // Data the run recorded may have moved since: the page then works without test images. A --data given here must load.
  if (flags.data === undefined && !existsSync(path)) {
    process.stderr.write(`capsnet viz: the data this model was trained on (${path}) is not there any more: give --data PATH to show its test images\n`);
    return null;
  }
  const ds = await loadData(spec, 'test', loadOptions(flags));
  const { numClasses, inputShape: [h, w, c] } = json.config;
  if (ds.numClasses !== numClasses) throw new Error(`--data ${path} has ${ds.numClasses} classes, the model ${numClasses}`);
  if (ds.height !== h || ds.width !== w || ds.channels !== c) throw new Error(`--data ${path} gives ${ds.height}x${ds.width}x${ds.channels} images, the model takes ${h}x${w}x${c}`);
  return pickSamples(ds, basename(resolve(path)), basename(resolve(path)));
}

export async function runViz({ flags }: ArgsOf<typeof vizSpec>): Promise<number> {
  if (flags.model && flags.pretrained) throw new UsageError('give either --model or --pretrained, not both');
  let modelDir: string | undefined;
  let modelLabel: string | undefined;
  let samples: SampleFiles | null = null;
  if (flags.data !== undefined && !flags.model && !flags.pretrained) throw new UsageError('--data names the test images of a model: give the model with --model');
  if (flags.model || flags.pretrained) {
    modelDir = flags.pretrained ? pretrainedDir(flags.pretrained) : resolveModelDir(modelPathOrPretrained(flags.model!));
    const jsonPath = join(modelDir, 'model.json');
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch {
      throw new Error(`${jsonPath} is not valid JSON`);
    }
    const j = validateModelJson(json, jsonPath);
    modelLabel = `${basename(resolve(flags.model || modelDir))} (${j.modelType})`;
    samples = await modelSamples(flags, modelDir, j);
  }

  const t0 = Date.now();
  let built: boolean;
  if (flags.rebuild) {
    await buildViz({ outDir: DEFAULT_VIZ_OUT });
    built = true;
  } else {
    built = (await ensureVizBuilt(DEFAULT_VIZ_OUT)).built;
  }
  if (built && !flags.json) process.stderr.write(`built the visualizer in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (!modelDir && shippedModels().length === 0) {
    throw new Error('no pretrained model is in this copy: give one with --model MODEL (e.g. a directory written by capsnet train)');
  }

  const srv = await startVizServer({ root: DEFAULT_VIZ_OUT, modelDir, modelLabel, modelSamples: samples ?? undefined, port: flags.port }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EADDRINUSE') throw new UsageError(`port ${flags.port} is in use; choose another with --port, or --port 0 for any free port`);
    throw e;
  });
  const sampleCount = samples ? (JSON.parse(samples.json) as { count: number }).count : 0;
  if (flags.json) process.stdout.write(`${JSON.stringify({ url: srv.url, port: srv.port, model: modelDir ?? null, built, testImages: sampleCount })}\n`);
  else process.stdout.write(`capsnet visualizer: ${srv.url}  (Ctrl-C to stop)\n`);

  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void srv.close().then(done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
