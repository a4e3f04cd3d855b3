#!/usr/bin/env node
/**
 * Runs before `npm test` (the pretest script): makes sure what the tests need
 * is here, so that the test command runs every test.
 *
 * - the native engine (build/Release/capsnet_native.node): built if missing;
 * - Chromium, for the visualizer's browser tests (/usr/bin/chromium, or
 *   CAPSNET_CHROMIUM);
 * - Fashion-MNIST's IDX files, for its loader tests (Debian's
 *   dataset-fashion-mnist, or CAPSNET_FASHION_MNIST_DIR);
 * - a python3 with the onnx package, for the ONNX checker the export tests
 *   run (Debian's python3-onnx).
 *
 * On Debian or Ubuntu as root the missing packages are installed with
 * apt-get, one at a time (CAPSNET_TEST_SETUP=0 turns that off; Ubuntu's
 * chromium package is a snap stub that does not run in a container, so
 * there set CAPSNET_CHROMIUM to a real Chromium); elsewhere this says what to
 * install, and the tests that need it are skipped with that reason (the run's
 * last lines count them). Never fails: a test run without these still runs
 * everything else.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (s) => console.log(`capsnet test setup: ${s}`);

const needs = [
  {
    what: 'Chromium (browser tests)',
    override: 'CAPSNET_CHROMIUM',
    present: () => existsSync(process.env.CAPSNET_CHROMIUM ?? '/usr/bin/chromium'),
    debian: 'chromium',
    elsewhere: 'install Chromium and set CAPSNET_CHROMIUM to its executable',
  },
  {
    what: 'Fashion-MNIST (loader tests)',
    override: 'CAPSNET_FASHION_MNIST_DIR',
    present: () => existsSync(process.env.CAPSNET_FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist'),
    debian: 'dataset-fashion-mnist',
    elsewhere: 'put the four Fashion-MNIST .gz IDX files in a folder and set CAPSNET_FASHION_MNIST_DIR to it',
  },
  {
    what: 'the ONNX checker (export tests)',
    present: () => ['/usr/bin/python3', 'python3'].some((py) => spawnSync(py, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0),
    debian: 'python3-onnx',
    elsewhere: 'pip install onnx for the python3 on PATH',
  },
];

function canApt() {
  return process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0 && process.env.CAPSNET_TEST_SETUP !== '0' && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
}

function main() {
  if (!existsSync(path.join(root, 'build', 'Release', 'capsnet_native.node')) && process.env.CAPSNET_SKIP_NATIVE !== '1') {
    say('the native engine is not built; building it');
    spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], { stdio: 'inherit' });
  }
  let missing = needs.filter((n) => !n.present());
  if (missing.length === 0) return;
  // A need whose path was given by its variable is the user's to fix: a package would not put it there.
  const installable = missing.filter((n) => !(n.override && process.env[n.override]));
  if (installable.length && canApt()) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    say(`installing ${installable.map((n) => n.debian).join(', ')} with apt-get`);
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    // One package per call: apt installs nothing when any name of a call is unknown to it.
    for (const n of installable) spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', n.debian], { stdio: 'inherit', env });
    missing = missing.filter((n) => !n.present());
  }
  for (const n of missing) say(`${n.what} is missing, so its tests will be skipped: on Debian or Ubuntu apt-get install ${n.debian}; elsewhere ${n.elsewhere}`);
}

try {
  main();
} catch (e) {
  say(`could not check the test requirements: ${e instanceof Error ? e.message : String(e)}`);
}
