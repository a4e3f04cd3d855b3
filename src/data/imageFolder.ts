/**
 * Folders of pictures as datasets (Node only): one subfolder per class, as
 * DIR/train/<class>/... and DIR/test/<class>/..., or DIR/<class>/... split by
 * the caller. Class names are the folder names, sorted (the rules, shared
 * with the visualizer, are in ./pictureFolder.ts). Before anything is
 * trained, every picture is decoded once (the scan): files that cannot be
 * decoded are all found and reported together, and the pictures' sizes and
 * colour decide the input size and channels unless they are given. The
 * pictures are then prepared (./imageDecode.ts) into a pixel cache
 * (./pixelCache.ts) that later runs read instead of decoding again.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Progress } from '../util/progress.js';
import { imagePreparation, mapLimited, prepareImage, probeImage, readImageFile, type ImagePreparation } from './imageDecode.js';
import { checkDecodedClasses, folderInputShape, folderLayout, folderTree, isImageFile, isVisibleName, type ImageProbe } from './pictureFolder.js';
import { openPixelCache, writePixelCache, type PixelCache, type PixelCacheHeader } from './pixelCache.js';

export interface FolderFile {
  path: string;
  /** Path relative to the dataset folder (the cache key and the messages use it). */
  rel: string;
  label: number;
  /** Index into FolderScan.groupNames. */
  group: number;
  size: number;
  mtimeMs: number;
}

export interface FolderScan {
  root: string;
  layout: 'train-test' | 'classes';
  classNames: string[];
  groupNames: string[];
  files: FolderFile[];
}

/** Picture files under `dir`, at any depth, sorted; other files (.txt, .DS_Store) are ignored. */
export function imagesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (!isVisibleName(d.name)) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...imagesUnder(p));
    else if (d.isFile() && isImageFile(d.name)) out.push(p);
  }
  return out.sort();
}

/** The visible files and folders under `dir`, at any depth, as '/'-separated paths relative to it. */
function listFolder(dir: string, prefix = '', out: { files: string[]; folders: string[] } = { files: [], folders: [] }): { files: string[]; folders: string[] } {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (!isVisibleName(d.name)) continue;
    const rel = prefix + d.name;
    if (d.isDirectory()) {
      out.folders.push(rel);
      listFolder(join(dir, d.name), `${rel}/`, out);
    } else if (d.isFile()) out.files.push(rel);
  }
  return out;
}

/** List a folder dataset and check its layout (folderLayout): every class has pictures, the test classes are the training ones, there are two classes or more. */
export function scanImageFolder(dir: string): FolderScan {
  const root = resolve(dir);
  if (!existsSync(root)) throw new Error(`data folder not found: ${dir}`);
  if (!statSync(root).isDirectory()) throw new Error(`${dir} is not a folder`);
  const { files, folders } = listFolder(root);
  const layout = folderLayout(folderTree(files, folders), (rel) => (rel ? join(dir, rel) : dir));
  return {
    root,
    ...layout,
    files: layout.files.map((f) => {
      const path = join(root, f.rel);
      const st = statSync(path);
      return { path, rel: f.rel, label: f.label, group: f.group, size: st.size, mtimeMs: st.mtimeMs };
    }),
  };
}

export interface FolderCacheOptions {
  /** Side of the square input; default: the pictures' own size when all agree, else 32. */
  imageSize?: number;
  /** 1 or 3; default: 3 when any picture has colour, else 1. */
  channels?: 1 | 3;
  /** Leave out files that cannot be decoded instead of stopping. */
  skipInvalid?: boolean;
  /** Folder for the cache file. */
  cacheDir: string;
  progress?: boolean;
  /** Summary lines (default: stderr). */
  log?: (line: string) => void;
}

const CACHE_VERSION = 1;
/** Pictures decoded at once: enough to keep libvips' threads busy, few enough to bound memory. */
const DECODE_CONCURRENCY = 8;

function cacheKey(scan: FolderScan, o: FolderCacheOptions): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ version: CACHE_VERSION, root: scan.root, imageSize: o.imageSize ?? null, channels: o.channels ?? null, skipInvalid: !!o.skipInvalid, classes: scan.classNames, groups: scan.groupNames }));
  for (const f of scan.files) h.update(`\n${f.rel}\t${f.group}\t${f.label}\t${f.size}\t${f.mtimeMs}`);
  return h.digest('hex');
}

export function folderCachePath(scan: FolderScan, o: FolderCacheOptions): string {
  return join(o.cacheDir, `${cacheKey(scan, o).slice(0, 24)}.pixels`);
}

/**
 * The folder's pixel cache, from `cacheDir` when a cache of the same files
 * (paths, sizes, modification times) and options is there, else made now:
 * decode every picture to find the invalid ones and the input size, then
 * prepare them into the cache.
 */
export async function folderCache(scan: FolderScan, o: FolderCacheOptions): Promise<PixelCache> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const key = cacheKey(scan, o);
  const path = folderCachePath(scan, o);
  const existing = openPixelCache(path);
  if (existing && existing.header.key === key) return existing;

  // The scan: decode everything once.
  const scanBar = new Progress({ label: `scan ${scan.files.length} pictures`, total: scan.files.length, unit: 'files', enabled: o.progress ?? false });
  let done = 0;
  const probes = await mapLimited(scan.files, DECODE_CONCURRENCY, async (f) => {
    try {
      return await probeImage(await readImageFile(f.path), f.rel);
    } catch (e) {
      return { error: (e as Error).message.replace(`${f.rel}: `, '') };
    } finally {
      scanBar.update(++done);
    }
  });
  scanBar.finish();
  // libvips keeps one error text per process, so a picture that failed while
  // others decoded beside it may carry another file's message: decode the
  // failures again, one at a time, for their own reasons.
  for (let i = 0; i < probes.length; i++) {
    if (!('error' in probes[i])) continue;
    const f = scan.files[i];
    try {
      probes[i] = await probeImage(await readImageFile(f.path), f.rel);
    } catch (e) {
      probes[i] = { error: (e as Error).message.replace(`${f.rel}: `, '') };
    }
  }
  const invalid = scan.files.flatMap((f, i) => ('error' in probes[i] ? [{ path: f.rel, reason: (probes[i] as { error: string }).error }] : [])).sort((a, b) => (a.path < b.path ? -1 : 1));
  if (invalid.length && !o.skipInvalid) {
    const first = invalid.slice(0, 3).map((b) => `${b.path} (${b.reason})`).join('; ');
    throw new Error(`${invalid.length} of ${scan.files.length} files in ${scan.root} cannot be decoded: ${first}${invalid.length > 3 ? '; ...' : ''}. Fix or remove them, or pass --skip-invalid to leave them out`);
  }
  const keep = scan.files.map((_, i) => i).filter((i) => !('error' in probes[i]));
  checkDecodedClasses(scan, probes.map((p) => !('error' in p)));
  if (invalid.length) log(`skipping ${invalid.length} of ${scan.files.length} files that cannot be decoded (--skip-invalid), first: ${invalid[0].path} (${invalid[0].reason})`);

  const { height, width, channels, sizes } = folderInputShape(keep.map((i) => probes[i] as ImageProbe), o);
  const prep = imagePreparation(height, width, channels);

  const header: PixelCacheHeader = {
    format: 'capsnet-pixels',
    version: 1,
    key,
    count: keep.length,
    height,
    width,
    channels,
    classNames: scan.classNames,
    groupNames: scan.groupNames,
    info: { source: scan.root, layout: scan.layout, preparation: prep, files: scan.files.length, skipped: invalid, sizes: sizes.slice(0, 10) },
  };
  const labels = Int32Array.from(keep, (i) => scan.files[i].label);
  const groups = Uint8Array.from(keep, (i) => scan.files[i].group);
  const bar = new Progress({ label: `decode ${keep.length} pictures to ${width}x${height}x${channels}`, total: keep.length, unit: 'files', enabled: o.progress ?? false });
  await writePixelCache(path, header, labels, groups, preparedInOrder(scan, keep, prep, bar));
  bar.finish();
  log(`decoded ${keep.length} pictures of ${scan.classNames.length} classes to ${width}x${height}x${channels} in ${bar.elapsedSeconds.toFixed(1)} s (${Math.round(keep.length / Math.max(bar.elapsedSeconds, 1e-3))} files/s); cache: ${path}`);
  const cache = openPixelCache(path);
  if (!cache) throw new Error(`${path}: the pixel cache just written is missing`);
  return cache;
}

/** Prepared pictures in file order, a chunk at a time (memory: one chunk). */
async function* preparedInOrder(scan: FolderScan, keep: number[], prep: ImagePreparation, bar: Progress): AsyncGenerator<Uint8Array> {
  const chunk = 4 * DECODE_CONCURRENCY;
  for (let s = 0; s < keep.length; s += chunk) {
    const part = keep.slice(s, s + chunk);
    const images = await mapLimited(part, DECODE_CONCURRENCY, async (i) => prepareImage(await readImageFile(scan.files[i].path), scan.files[i].rel, prep));
    yield* images;
    bar.update(Math.min(keep.length, s + chunk));
  }
}

export interface FolderSummary {
  source: string;
  files: number;
  images: number;
  skipped: { path: string; reason: string }[];
  preparation: ImagePreparation;
}

export function folderSummary(cache: PixelCache): FolderSummary {
  const info = cache.header.info ?? {};
  return {
    source: String(info.source),
    files: Number(info.files),
    images: cache.header.count,
    skipped: (info.skipped as FolderSummary['skipped']) ?? [],
    preparation: info.preparation as ImagePreparation,
  };
}
