#!/usr/bin/env node
/**
 * The native engine on linux-arm64, under emulation, from an x86-64 Debian or
 * Ubuntu machine: `npm run test:arm64` (which compiles the TypeScript first).
 *
 * 1. Installs what it needs when missing (with apt, as root):
 *    g++-aarch64-linux-gnu and qemu-user, and Debian's arm64 node with the
 *    libraries it links and the modules it ships apart (acorn,
 *    cjs-module-lexer, undici). The arm64 packages are downloaded with
 *    `apt-get download` (after `dpkg --add-architecture arm64`) and unpacked
 *    into build-arm64/sysroot, so nothing of the host's node changes.
 * 2. Cross-compiles the addon into build-arm64/ (the host's build/Release is
 *    left alone) from binding.gyp's sources and flags, with
 *    CAPSNET_TARGET_ARCH=arm64 so that no x86 flag reaches it
 *    (scripts/native-config.mjs) and CAPSNET_BLAS=builtin (no arm64
 *    OpenBLAS here).
 * 3. Copies dist/ and bin/ into build-arm64/tree beside that addon (the
 *    loader finds the addon relative to dist/), and runs the engine's kernel
 *    and GEMM tests there on the arm64 node under qemu-aarch64, after
 *    checking that the addon loads and runs its NEON GEMM kernel.
 *
 * Debian bookworm's arm64 node is 18, older than the `engines` field asks
 * for; the kernel tests run on it because they need nothing newer. The one
 * test that starts the `capsnet` command cannot run here (CANNOT_RUN below):
 * the command loads sharp, which needs node 20 and whose arm64 build npm did
 * not install on this x86-64 machine. The addon's own report of its kernel,
 * which that test reads through `capsnet info`, is checked before the tests.
 *
 *   node scripts/test-arm64.mjs [--all] [TEST_FILE.test.js ...]
 *                               the tests to run (default: the list below);
 *                               --all also runs the SLOW ones
 *   CAPSNET_ARM64_JOBS=N        parallel compiler jobs (default: the CPU count)
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// Not under build/: node-gyp rebuild (npm ci, build-native.mjs) deletes that folder.
const work = path.join(root, 'build-arm64');
const sysroot = path.join(work, 'sysroot');
const tree = path.join(work, 'tree');
const addonPath = path.join(tree, 'build', 'Release', 'capsnet_native.node');
const armNode = path.join(sysroot, 'usr', 'bin', 'node');
const cross = 'aarch64-linux-gnu-g++';
/** The engine's kernel and GEMM tests (compiled into dist/test/). */
const DEFAULT_TESTS = ['gemm.test.js', 'nativeKernels.test.js', 'nativeCapsules.test.js', 'nativeSafety.test.js'];
/** Tests that cannot run under this emulation, by the start of their names, with why. */
const CANNOT_RUN = [
  {
    name: 'CAPSNET_GEMM_ISA and CAPSNET_GEMM choose the GEMM when the engine loads',
    why: 'starts the capsnet command, which loads sharp (node >= 20, and no arm64 build of it installed here)',
  },
];
/** Tests left out unless --all: emulated, they take longer than all the others together. */
const SLOW = [
  {
    name: 'frequency-domain convolutions (polyphase DFT) equal the cpu kernels',
    why: 'over half an hour emulated (run it with --all)',
  },
];
/** Host packages (Debian names) and the commands they provide. */
const HOST_PACKAGES = { 'g++-aarch64-linux-gnu': cross, 'qemu-user': 'qemu-aarch64' };

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
const say = (line) => console.log(`test:arm64 [${elapsed()}] ${line}`);

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

/** Runs a command to completion; its output is returned, or the run fails naming the command. */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n  ');
    fail(`${cmd} ${args.join(' ')} exited with ${r.status}${tail ? `:\n  ${tail}` : ''}`);
  }
  return r.stdout ?? '';
}

function onPath(command) {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && existsSync(path.join(d, command)));
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function apt(args) {
  run('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

let aptUpdated = false;
function aptUpdate() {
  if (aptUpdated) return;
  say('apt-get update');
  apt(['update', '-qq']);
  aptUpdated = true;
}

function ensureHostPackages() {
  const missing = Object.entries(HOST_PACKAGES).filter(([, command]) => !onPath(command)).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (!isRoot()) fail(`missing ${missing.join(', ')}: install them (apt-get install ${missing.join(' ')}) or run this as root`);
  aptUpdate();
  say(`installing ${missing.join(', ')}`);
  apt(['install', '-y', '-qq', '--no-install-recommends', ...missing]);
}

/**
 * The packages that Debian's arm64 node needs, found by following the
 * Depends of `apt-cache depends` from nodejs:arm64: arm64 libraries and the
 * architecture-independent node-* modules, never the host's own packages.
 */
function armNodePackages() {
  const wanted = new Set();
  const queue = ['nodejs:arm64'];
  while (queue.length > 0) {
    const pkg = queue.shift();
    if (wanted.has(pkg)) continue;
    wanted.add(pkg);
    const out = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', pkg]);
    const lines = out.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const m = lines[i].match(/^\s+\|?(?:Pre)?Depends: (.+)$/);
      if (!m) continue;
      let dep = m[1].trim();
      // A virtual package (<name>): its providers follow, indented; take the first.
      if (dep.startsWith('<')) dep = lines[i + 1]?.match(/^\s{4}(\S+)$/)?.[1] ?? '';
      const arm = dep.endsWith(':arm64');
      const indep = /^node-[\w.-]+$/.test(dep);
      if ((arm || indep) && !wanted.has(dep)) queue.push(dep);
    }
  }
  return [...wanted].sort();
}

function ensureSysroot() {
  if (existsSync(armNode) && existsSync(path.join(sysroot, '.complete'))) return;
  if (!isRoot()) fail('Debian\'s arm64 node is not unpacked yet and that needs apt as root: run this once as root');
  if (!run('dpkg', ['--print-foreign-architectures']).split('\n').includes('arm64')) {
    say('dpkg --add-architecture arm64');
    run('dpkg', ['--add-architecture', 'arm64']);
    aptUpdated = false;
  }
  aptUpdate();
  const packages = armNodePackages();
  say(`downloading Debian's arm64 node: ${packages.join(' ')}`);
  const debs = path.join(work, 'debs');
  rmSync(debs, { recursive: true, force: true });
  rmSync(sysroot, { recursive: true, force: true });
  mkdirSync(debs, { recursive: true });
  // apt-get download writes into the working directory; _apt must be able to write it.
  chmodSync(debs, 0o777);
  run('apt-get', ['download', '-qq', ...packages], { cwd: debs });
  for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb'))) run('dpkg', ['-x', path.join(debs, deb), sysroot]);
  rmSync(debs, { recursive: true, force: true });
  writeFileSync(path.join(sysroot, '.complete'), packages.join('\n') + '\n');
}

/** qemu-aarch64 running the sysroot's node (the sysroot also serves its libraries and modules). */
function qemuArgs(args) {
  return ['-L', sysroot, armNode, ...args];
}

// --- Cross-compiling the addon ------------------------------------------------

/**
 * binding.gyp's first target, with its command expansions (<!@(...)) run as
 * gyp would (in the repository, through the shell) for an arm64 build.
 */
function gypTarget(env) {
  const gyp = JSON.parse(readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
  const target = gyp.targets?.[0];
  if (!target) fail('binding.gyp has no target');
  const expand = (list) =>
    (list ?? []).flatMap((item) => {
      const m = String(item).match(/^<!@\((.*)\)$/);
      if (!m) return [String(item)];
      return run('sh', ['-c', m[1]], { cwd: root, env }).split(/\s+/).filter(Boolean);
    });
  return {
    name: target.target_name,
    sources: expand(target.sources),
    includeDirs: expand(target.include_dirs),
    cflags: [...expand(target.cflags), ...expand(target.cflags_cc)],
    ldflags: expand(target.ldflags),
    libraries: expand(target.libraries),
  };
}

/** Node's N-API headers (node_api.h): the host node's, which serve any architecture. */
function nodeIncludeDir() {
  for (const dir of [path.resolve(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node']) {
    if (existsSync(path.join(dir, 'node_api.h'))) return dir;
  }
  fail('node_api.h not found beside this node (a node install with its headers is needed)');
}

/** Runs the commands with at most `jobs` at once; fails with the first failure's output. */
async function parallel(commands, jobs) {
  let next = 0;
  let failed = null;
  const worker = async () => {
    while (next < commands.length && !failed) {
      const { cmd, args, label } = commands[next++];
      const result = await new Promise((resolve) => {
        const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        child.on('error', (e) => resolve({ code: -1, output: e.message }));
        child.on('close', (code) => resolve({ code, output }));
      });
      if (result.code !== 0) failed = `${label}: ${cmd} failed:\n${result.output.trim()}`;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  if (failed) fail(failed);
}

async function buildAddon() {
  const env = { ...process.env, CAPSNET_TARGET_ARCH: 'arm64', CAPSNET_BLAS: 'builtin' };
  const t = gypTarget(env);
  if (t.sources.length === 0) fail('binding.gyp lists no sources');
  const obj = path.join(work, 'obj');
  rmSync(obj, { recursive: true, force: true });
  // node-gyp's own defaults for a Linux release build, then binding.gyp's flags.
  const flags = [
    '-O3', '-fPIC', '-pthread', '-fno-omit-frame-pointer', '-fno-rtti',
    `-DNODE_GYP_MODULE_NAME=${t.name}`, '-DBUILDING_NODE_EXTENSION', '-D_LARGEFILE_SOURCE', '-D_FILE_OFFSET_BITS=64',
    `-I${nodeIncludeDir()}`, ...t.includeDirs.map((d) => `-I${path.resolve(root, d)}`),
    ...t.cflags,
  ];
  const x86 = flags.filter((f) => /^-m(avx|fma|sse|arch=x86|tune=haswell)/.test(f));
  if (x86.length > 0) fail(`x86 flags reached the arm64 build: ${x86.join(' ')}`);
  const objects = t.sources.map((src) => path.join(obj, src.replace(/\.cc$/, '.o')));
  for (const o of objects) mkdirSync(path.dirname(o), { recursive: true });
  const jobs = Number(process.env.CAPSNET_ARM64_JOBS) || os.availableParallelism?.() || os.cpus().length;
  say(`compiling ${t.sources.length} sources with ${cross} (${jobs} jobs)`);
  await parallel(t.sources.map((src, i) => ({ cmd: cross, args: [...flags, '-c', src, '-o', objects[i]], label: src })), jobs);
  mkdirSync(path.dirname(addonPath), { recursive: true });
  run(cross, ['-shared', '-pthread', '-o', addonPath, ...objects, ...t.ldflags, ...t.libraries], { cwd: root });
  // The loader's manifest: built for no CPU-specific features.
  writeFileSync(addonPath.replace(/\.node$/, '.json'), JSON.stringify({ cpuFeatures: [], blas: 'builtin', openblas: null }, null, 2) + '\n');
  // e_machine of the ELF header: 183 is AArch64.
  const machine = readFileSync(addonPath).readUInt16LE(18);
  if (machine !== 183) fail(`the addon is not an arm64 library (ELF machine ${machine})`);
}

// --- The test tree --------------------------------------------------------------

/**
 * build-arm64/tree: copies of dist/ and bin/ (modules are found through their
 * real paths, so links would lead back to the host's addon) beside the arm64
 * addon, and links to what is only read.
 */
function stageTree() {
  if (!existsSync(path.join(root, 'dist', 'test'))) fail('dist/test is missing: run npm run build first');
  for (const dir of ['dist', 'bin']) {
    rmSync(path.join(tree, dir), { recursive: true, force: true });
    cpSync(path.join(root, dir), path.join(tree, dir), { recursive: true });
  }
  cpSync(path.join(root, 'package.json'), path.join(tree, 'package.json'));
  for (const dir of ['node_modules', 'test', 'pretrained']) {
    const link = path.join(tree, dir);
    rmSync(link, { recursive: true, force: true });
    if (existsSync(path.join(root, dir))) symlinkSync(path.join(root, dir), link);
  }
}

/** The environment of the emulated runs: the build's default GEMM, whatever the caller's shell selects. */
const emulatedEnv = () => ({ ...process.env, CAPSNET_GEMM: '', CAPSNET_GEMM_ISA: '' });

/** Runs the arm64 node under qemu in the test tree, echoing its output; resolves to that output and its exit code. */
function runEmulated(args) {
  return new Promise((resolve) => {
    const child = spawn('qemu-aarch64', qemuArgs(args), { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'], env: emulatedEnv() });
    let output = '';
    const echo = (d) => {
      output += d;
      process.stdout.write(d);
    };
    child.stdout.on('data', echo);
    child.stderr.on('data', echo);
    child.on('error', (e) => resolve({ code: -1, output: e.message }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/**
 * A --test-name-pattern that every test name matches except the excluded
 * ones. node runs a test whose parent matches, and the file's top-level tests
 * have the root test, named "<root>", as their parent: so it must not match.
 */
function namePattern(excluded) {
  const escape = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `^(?!<root>$|${excluded.map((e) => escape(e.name)).join('|')})`;
}

async function main() {
  if (process.platform !== 'linux') fail('this runs on Linux (it emulates linux-arm64 with qemu-user)');
  if (process.arch === 'arm64') fail('this machine is arm64 already: build and test natively (npm ci, npm test)');
  const args = process.argv.slice(2);
  const all = args.includes('--all');
  const named = args.filter((a) => a !== '--all');
  for (const a of named) if (a.startsWith('-')) fail(`unknown option ${a} (only --all)`);
  const tests = named.length > 0 ? named : DEFAULT_TESTS;
  const excluded = all ? CANNOT_RUN : [...CANNOT_RUN, ...SLOW];
  for (const t of tests) if (!existsSync(path.join(root, 'dist', 'test', path.basename(t)))) fail(`dist/test/${path.basename(t)} not found (run npm run build)`);
  mkdirSync(work, { recursive: true });
  ensureHostPackages();
  ensureSysroot();
  say(`node ${run('qemu-aarch64', qemuArgs(['--version'])).trim()} (arm64, under qemu-aarch64)`);
  await buildAddon();
  stageTree();

  // The addon must load and run its NEON kernel (the native tests would
  // otherwise skip their cases and pass), and the backend must name that
  // kernel as `capsnet info` prints it.
  const probe = `const { loadNativeBackend, loadAddon } = await import('./dist/src/native/index.js');
const backend = await loadNativeBackend();
if (!backend.ok) { console.error('the arm64 addon does not load: ' + backend.reason); process.exit(1); }
const loaded = loadAddon();
console.log(JSON.stringify({ backend: backend.blas, ...loaded.addon.info() }));`;
  const probed = spawnSync('qemu-aarch64', qemuArgs(['--input-type=module', '-e', probe]), { cwd: tree, encoding: 'utf8', env: emulatedEnv() });
  if (probed.status !== 0) fail(`${probed.stderr || probed.stdout || probed.error}`.trim());
  const info = JSON.parse(probed.stdout.trim().split('\n').pop());
  say(`addon info: ${JSON.stringify(info)}`);
  if (info.backend !== 'built-in GEMM (neon)' || info.gemmIsas !== 'neon' || info.simd !== 'neon') {
    fail(`expected the built-in GEMM's neon kernel (only) and neon SIMD, got ${info.backend}, kernels ${info.gemmIsas}, simd ${info.simd}`);
  }

  // Each file runs in one emulated process: node --test would start one per
  // file by itself, which the host cannot do without binfmt_misc.
  for (const e of excluded) say(`left out: "${e.name}": ${e.why}`);
  const results = [];
  for (const t of tests) {
    const file = path.join('dist', 'test', path.basename(t));
    say(`running ${file}`);
    const t0 = Date.now();
    const r = await runEmulated([`--test-name-pattern=${namePattern(excluded)}`, file]);
    const count = (key) => Number(r.output.match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? NaN);
    const skippedNative = (r.output.match(/# SKIP native engine unavailable/g) ?? []).length;
    const leftOut = (r.output.match(/# SKIP test name does not match pattern/g) ?? []).length;
    results.push({ file, code: r.code, pass: count('pass'), fail: count('fail'), skipped: count('skipped') - leftOut, leftOut, skippedNative, seconds: (Date.now() - t0) / 1000 });
  }
  console.log('\ntest:arm64 results (Debian arm64 node under qemu-aarch64):');
  for (const r of results) {
    console.log(`  ${r.file}: ${r.pass} passed, ${r.fail} failed, ${r.skipped} skipped, ${r.leftOut} left out, exit ${r.code}, ${r.seconds.toFixed(0)} s`);
  }
  const bad = results.filter((r) => r.code !== 0 || r.fail !== 0 || !(r.pass > 0) || r.skippedNative > 0);
  if (bad.length > 0) fail(`failed: ${bad.map((r) => (r.skippedNative > 0 ? `${r.file} (native cases skipped)` : r.file)).join(', ')}`);
  say(`all passed (${info.gemmIsa} GEMM kernel, ${info.threads} thread${info.threads === 1 ? '' : 's'})`);
}

try {
  await main();
} catch (e) {
  if (!(e instanceof Failure)) throw e;
  console.error(`test:arm64: ${e.message}`);
  process.exitCode = 1;
}
