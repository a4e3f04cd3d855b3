#!/usr/bin/env node
// The capsnet command. The TypeScript sources are compiled into dist/ by
// `npm ci` (prepare) or `npm run build`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'cli', 'index.js');
if (!existsSync(entry)) {
  process.stderr.write('capsnet: not built yet: run `npm run build` (or `npm ci`) in the capsnet directory\n');
  process.exit(1);
}
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
