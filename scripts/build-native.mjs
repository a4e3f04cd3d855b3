#!/usr/bin/env node
/**
 * Builds the native engine (an N-API addon with its own GEMM) with node-gyp.
 * Runs as the package's install script and never fails the install: without
 * a compiler or node headers it says so once and capsnet runs on the wasm
 * backend instead.
 *
 *   CAPSNET_SKIP_NATIVE=1       do not build
 *   CAPSNET_BLAS=auto|builtin|openblas
 *                               which GEMM (see scripts/native-config.mjs)
 *   CAPSNET_OPENBLAS_DIR=PREFIX OpenBLAS outside the default paths
 *   CAPSNET_NATIVE_PORTABLE=1   no CPU-specific SIMD flags (for an addon
 *                               that must run on other x86-64 machines)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeConfig } from './native-config.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build');
const addonPath = path.join(buildDir, 'Release', 'capsnet_native.node');
const logPath = path.join(buildDir, 'native-build.log');

function report(ok, message) {
  const prefix = ok ? 'capsnet: native engine built' : 'capsnet: native engine not built';
  console.log(`${prefix}: ${message}`);
  if (!ok) console.log('capsnet: the wasm backend will be used instead (slower; see "Native engine" in the README).');
}

/** node-gyp: the one npm runs scripts with, else npm's bundled copy, else PATH. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && existsSync(c)) return { cmd: process.execPath, args: [c] };
  return { cmd: 'node-gyp', args: [] };
}

/**
 * Headers of the running node: a system or tarball install ships them under
 * <prefix>/include/node, which saves node-gyp a download (and works offline).
 */
function localNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) && existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? prefix : null;
}

function main() {
  if (process.env.CAPSNET_SKIP_NATIVE === '1') {
    report(false, 'skipped (CAPSNET_SKIP_NATIVE=1)');
    return;
  }
  if (process.platform === 'win32') {
    report(false, 'Windows is not supported by the native build');
    return;
  }
  const cfg = nativeConfig();
  if (cfg.blas.error) {
    report(false, cfg.blas.error);
    return;
  }
  mkdirSync(buildDir, { recursive: true });
  const gyp = findNodeGyp();
  const args = [...gyp.args, 'rebuild', '--release', '--jobs=max'];
  const nodedir = localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const run = spawnSync(gyp.cmd, args, { cwd: root, encoding: 'utf8', env: process.env, maxBuffer: 64 * 1024 * 1024 });
  const log = `${gyp.cmd} ${args.join(' ')}\n\n${run.stdout ?? ''}\n${run.stderr ?? ''}\n${run.error ? String(run.error) : ''}`;
  writeFileSync(logPath, log);
  if (run.status !== 0 || !existsSync(addonPath)) {
    const tail = log.trim().split('\n').filter((l) => /error|not found|No such/i.test(l)).slice(-5).join('\n  ');
    report(false, `node-gyp failed (full log: build/native-build.log)${tail ? `\n  ${tail}` : ''}`);
    return;
  }
  // What the addon was compiled for, so that the loader can refuse it on a
  // CPU without those features instead of crashing on an illegal instruction.
  writeFileSync(path.join(buildDir, 'Release', 'capsnet_native.json'), JSON.stringify({ cpuFeatures: cfg.simd.features, blas: cfg.blas.mode, openblas: cfg.blas.linked }, null, 2) + '\n');
  try {
    const addon = createRequire(import.meta.url)(addonPath);
    const info = addon.info();
    const gemm = info.gemm === 'builtin' ? `built-in GEMM (${info.gemmIsa} kernels)` : `${info.openblas.split(' ').slice(0, 2).join(' ')} (${info.gemmIsa})`;
    const also = info.openblas && info.gemm === 'builtin' ? `, OpenBLAS linked too (CAPSNET_GEMM=openblas)` : '';
    report(true, `${gemm}${also}; it is the default backend`);
  } catch (e) {
    report(false, `the addon was built but does not load: ${e instanceof Error ? e.message : String(e)}`);
  }
}

try {
  main();
} catch (e) {
  report(false, `unexpected error: ${e instanceof Error ? e.message : String(e)}`);
}
process.exitCode = 0;
