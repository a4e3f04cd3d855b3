#!/usr/bin/env node
/**
 * Compiler and linker flags for the native engine, printed for binding.gyp:
 *
 *   node scripts/native-config.mjs cflags   include path and SIMD flags
 *   node scripts/native-config.mjs libs     how to link OpenBLAS
 *   node scripts/native-config.mjs json     everything, for the build script
 *
 * OpenBLAS is found through CAPSNET_OPENBLAS_DIR (a prefix with include/ and
 * lib/), then pkg-config, then Homebrew's keg on macOS, then the default
 * linker path. SIMD flags target the building machine's CPU (AVX2 + FMA when
 * it has them); the loader refuses an addon built for features the running
 * CPU lacks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function pkgConfig(args) {
  try {
    return execFileSync('pkg-config', [...args, 'openblas'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function openblas() {
  const dir = process.env.CAPSNET_OPENBLAS_DIR;
  if (dir) {
    const lib = path.join(dir, 'lib');
    return { source: `CAPSNET_OPENBLAS_DIR=${dir}`, cflags: [`-I${path.join(dir, 'include')}`], libs: [`-L${lib}`, `-Wl,-rpath,${lib}`, '-lopenblas'] };
  }
  const libs = pkgConfig(['--libs']);
  if (libs != null) {
    const cflags = pkgConfig(['--cflags']) ?? '';
    return { source: 'pkg-config', cflags: cflags.split(/\s+/).filter(Boolean), libs: libs.split(/\s+/).filter(Boolean) };
  }
  if (process.platform === 'darwin') {
    for (const prefix of ['/opt/homebrew/opt/openblas', '/usr/local/opt/openblas']) {
      if (existsSync(path.join(prefix, 'lib'))) {
        const lib = path.join(prefix, 'lib');
        return { source: prefix, cflags: [`-I${path.join(prefix, 'include')}`], libs: [`-L${lib}`, `-Wl,-rpath,${lib}`, '-lopenblas'] };
      }
    }
  }
  return { source: 'default linker path', cflags: [], libs: ['-lopenblas'] };
}

/** CPU features of this machine that the kernels can use. */
export function cpuFeatures() {
  if (process.arch !== 'x64') return [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = new Set((info.match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
    return ['avx2', 'fma'].filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

function simd() {
  if (process.env.CAPSNET_NATIVE_PORTABLE === '1') return { features: [], cflags: [] };
  const f = cpuFeatures();
  if (f.includes('avx2') && f.includes('fma')) return { features: ['avx2', 'fma'], cflags: ['-mavx2', '-mfma'] };
  return { features: [], cflags: [] };
}

export function nativeConfig() {
  const blas = openblas();
  const cpu = simd();
  return { blas, simd: cpu, cflags: [...blas.cflags, ...cpu.cflags], libs: blas.libs };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const what = process.argv[2];
  const cfg = nativeConfig();
  if (what === 'cflags') console.log(cfg.cflags.join(' '));
  else if (what === 'libs') console.log(cfg.libs.join(' '));
  else console.log(JSON.stringify(cfg));
}
