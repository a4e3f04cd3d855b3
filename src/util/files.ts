/**
 * Crash-safe file writes (Node only): data goes to a temporary file in the
 * same directory, is flushed to disk, and is renamed over the target, so a
 * reader sees either the old file or the new one, never a partial one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

function writeAndSync(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems do not allow fsync on directories; the rename is still atomic.
  }
}

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${process.pid}.${Date.now()}.tmp`);
  try {
    writeAndSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dir);
}

/**
 * Write a new directory `path` holding `files` atomically: it is built under a
 * temporary name and renamed into place. `path` must not exist yet.
 */
export function writeDirAtomic(path: string, files: Record<string, Uint8Array | string>): void {
  const parent = dirname(path);
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.${process.pid}.${Date.now()}.tmpdir`);
  try {
    mkdirSync(tmp);
    for (const [name, data] of Object.entries(files)) writeAndSync(join(tmp, name), data);
    syncDir(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  syncDir(parent);
}
