#!/usr/bin/env node
/**
 * Compiler and linker flags for the native engine, printed for binding.gyp:
 *
 *   node scripts/native-config.mjs sources  every .cc file under src/native/
 *   node scripts/native-config.mjs cflags   defines, include path and SIMD flags
 *   node scripts/native-config.mjs libs     how to link OpenBLAS, if at all
 *   node scripts/native-config.mjs json     everything, for the build script
 *
 * The sources are found, not listed: a new .cc file is built as soon as it
 * exists, and registers its entry points itself (CAPSNET_ENTRY, see
 * src/native/boundary/entry.h).
 *
 * CAPSNET_BLAS chooses the matrix product (see src/native/engine/gemm/blas.h):
 *   auto (default)  the built-in GEMM; OpenBLAS is linked as well when it is
 *                   found, so that CAPSNET_GEMM=openblas can compare the two
 *   builtin         the built-in GEMM only: nothing but a C++ compiler needed
 *   openblas        OpenBLAS by default (without it the native build is
 *                   skipped, saying why); the built-in GEMM stays selectable
 *                   with CAPSNET_GEMM=builtin
 * The built-in GEMM is the default because it measures faster here (see
 * docs/native-engine.md), and it needs no system library.
 *
 * OpenBLAS is found through CAPSNET_OPENBLAS_DIR (a prefix with include/ and
 * lib/), then pkg-config, then Homebrew's keg on macOS, then the default
 * linker path. SIMD flags for the engine's other kernels target the building
 * machine's CPU (AVX2 + FMA when it has them); the loader refuses an addon
 * built for features the running CPU lacks. The GEMM kernels pick AVX-512,
 * AVX2 or portable code at run time whatever these flags are.
 *
 * CAPSNET_TARGET_ARCH (node's names: x64, arm64) says which architecture a
 * cross-compiled addon is for (scripts/test-arm64.mjs): one other than this
 * machine's gets no CPU-specific flags, since this machine's CPU says nothing
 * about the target's.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every C++ source of the engine, relative to the repository root (where binding.gyp is), in a stable order. */
export function nativeSources() {
  const dir = path.join(root, 'src', 'native');
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.cc'))
    .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'))
    .sort();
}

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

/** Whether the OpenBLAS found above is really there (the default linker path is only a guess). */
function openblasPresent(found) {
  if (found.source !== 'default linker path') return true;
  const dirs = ['/usr/lib', '/usr/lib64', '/usr/local/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu'];
  return dirs.some((d) => {
    try {
      return readdirSync(d).some((f) => f.startsWith('libopenblas'));
    } catch {
      return false;
    }
  });
}

export const BLAS_MODES = ['auto', 'builtin', 'openblas'];

/**
 * The GEMM setup of this build: { mode, openblas: found or null, error }.
 * error is set when CAPSNET_BLAS is unknown or asks for a missing OpenBLAS.
 */
function blas() {
  const mode = (process.env.CAPSNET_BLAS ?? '').trim() || 'auto';
  if (!BLAS_MODES.includes(mode)) return { mode, linked: null, cflags: [], libs: [], error: `CAPSNET_BLAS=${mode} is not one of ${BLAS_MODES.join(', ')}` };
  if (mode === 'builtin') return { mode, linked: null, cflags: [], libs: [] };
  const found = openblas();
  if (!openblasPresent(found)) {
    if (mode === 'openblas') {
      return { mode, linked: null, cflags: [], libs: [], error: 'CAPSNET_BLAS=openblas but OpenBLAS was not found (Debian/Ubuntu: apt-get install libopenblas-dev; macOS: brew install openblas; or set CAPSNET_OPENBLAS_DIR)' };
    }
    return { mode, linked: null, cflags: [], libs: [] };
  }
  const defines = ['-DCAPSNET_WITH_OPENBLAS', ...(mode === 'openblas' ? ['-DCAPSNET_DEFAULT_OPENBLAS'] : [])];
  return { mode, linked: found.source, cflags: [...defines, ...found.cflags], libs: found.libs };
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

/** The architecture the addon is built for: CAPSNET_TARGET_ARCH, else this machine's. */
export function targetArch() {
  return (process.env.CAPSNET_TARGET_ARCH ?? '').trim() || process.arch;
}

function simd() {
  if (process.env.CAPSNET_NATIVE_PORTABLE === '1' || targetArch() !== process.arch) return { features: [], cflags: [] };
  const f = cpuFeatures();
  if (f.includes('avx2') && f.includes('fma')) return { features: ['avx2', 'fma'], cflags: ['-mavx2', '-mfma'] };
  return { features: [], cflags: [] };
}

export function nativeConfig() {
  const b = blas();
  const cpu = simd();
  return { blas: b, simd: cpu, cflags: [...b.cflags, ...cpu.cflags], libs: b.libs };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const what = process.argv[2];
  const cfg = nativeConfig();
  if (what === 'sources') console.log(nativeSources().join(' '));
  else if (what === 'cflags') console.log(cfg.cflags.join(' '));
  else if (what === 'libs') console.log(cfg.libs.join(' '));
  else console.log(JSON.stringify(cfg));
}
