/**
 * capsnet viz: build the browser visualizer if needed, serve it on the
 * loopback interface and print the URL. The model runs in the browser.
 */
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { resolveModelDir } from '../models/files.js';
import { modelPathOrPretrained, pretrainedDir } from '../models/pretrained.js';
import { validateModelJson } from '../models/serialization.js';
import { buildViz, DEFAULT_VIZ_OUT, ensureVizBuilt, shippedModels } from '../viz/build.js';
import { startVizServer } from '../viz/server.js';
import { COMMON_FLAGS, UsageError, type CommandSpec, type ParsedArgs } from './args.js';

export const vizSpec: CommandSpec = {
  name: 'viz',
  summary: 'Serve the interactive visualizer on localhost: the model runs live in your browser.',
  description:
    'Builds the browser app if it is missing or older than its sources (npm run build:viz writes the same static files), ' +
    'serves it on 127.0.0.1 and prints the URL. Without --model the page offers the shipped pretrained models. ' +
    'Stop it with Ctrl-C.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    { name: 'port', type: 'int', min: 0, max: 65535, default: 0, help: 'port on 127.0.0.1 (0: any free port)' },
    { name: 'rebuild', type: 'boolean', help: 'rebuild the app even when it is up to date' },
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet viz', 'capsnet viz --model runs/my-capsnet --port 8080', 'capsnet viz --pretrained mnist'],
};

export async function runViz({ flags }: ParsedArgs): Promise<number> {
  if (flags.model && flags.pretrained) throw new UsageError('give either --model or --pretrained, not both');
  let modelDir: string | undefined;
  let modelLabel: string | undefined;
  if (flags.model || flags.pretrained) {
    modelDir = flags.pretrained ? pretrainedDir(flags.pretrained as string) : resolveModelDir(modelPathOrPretrained(flags.model as string));
    const jsonPath = join(modelDir, 'model.json');
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch {
      throw new Error(`${jsonPath} is not valid JSON`);
    }
    const j = validateModelJson(json, jsonPath);
    modelLabel = `${basename(resolve(flags.model ? (flags.model as string) : modelDir))} (${j.modelType})`;
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

  const srv = await startVizServer({ root: DEFAULT_VIZ_OUT, modelDir, modelLabel, port: flags.port as number }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'EADDRINUSE') throw new UsageError(`port ${flags.port} is in use; choose another with --port, or --port 0 for any free port`);
    throw e;
  });
  if (flags.json) process.stdout.write(`${JSON.stringify({ url: srv.url, port: srv.port, model: modelDir ?? null, built })}\n`);
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
