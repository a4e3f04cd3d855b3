/**
 * The rules of a folder of pictures as a dataset, on paths and decoded
 * sizes only (no file system, no decoder), so that `--data DIR` in Node
 * (./imageFolder.ts) and the visualizer's Train panel, which gets a folder
 * picked or dropped in the browser, read a folder the same way:
 *
 *   - which files are pictures (by extension; hidden names are skipped),
 *   - the layout: DIR/<class>/... or DIR/train/<class>/... and DIR/test/<class>/...,
 *     class names the folder names, sorted, and the files in their order,
 *   - whether every class still has a picture once undecodable ones are left out,
 *   - the input size and channels the pictures decide.
 */

/** File extensions read as pictures (compared in lower case); other files are ignored. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp'] as const;

/** Size used when the pictures' sizes differ and none is given. */
export const DEFAULT_IMAGE_SIZE = 32;

/** Colour differences up to this (of 255) count as gray: JPEG's chroma noise on a gray picture stays below it. */
export const GRAY_TOLERANCE = 8;

/** Whether a file name (or path) names a picture, by its extension. */
export function isImageFile(name: string): boolean {
  const base = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 && (IMAGE_EXTENSIONS as readonly string[]).includes(base.slice(dot).toLowerCase());
}

/** Names starting with a dot (.DS_Store, .cache/) are not part of a dataset. */
export function isVisibleName(name: string): boolean {
  return !name.startsWith('.');
}

/**
 * A folder's contents as '/'-separated paths relative to it: its visible
 * folders (every one, at any depth) and its visible picture files.
 */
export interface FolderTree {
  folders: string[];
  pictures: string[];
}

/**
 * The tree of a folder from the paths of its files (relative to it, '/'
 * between names) and, where known, of its folders: a path with a hidden
 * name anywhere is left out, only pictures count as files, and every folder
 * that holds a file is listed even when `folders` does not name it.
 */
export function folderTree(files: string[], folders: string[] = []): FolderTree {
  const visible = (p: string) => p.split('/').every(isVisibleName);
  const dirs = new Set(folders.filter((f) => f && visible(f)));
  const pictures: string[] = [];
  for (const f of files) {
    if (!visible(f)) continue;
    const parts = f.split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
    if (isImageFile(f)) pictures.push(f);
  }
  return { folders: [...dirs], pictures };
}

export interface FolderLayout {
  layout: 'train-test' | 'classes';
  classNames: string[];
  /** ['train', 'test'] or ['all']. */
  groupNames: string[];
  /** The pictures in dataset order, each with its class and group (an index into groupNames). */
  files: { rel: string; label: number; group: number }[];
}

/**
 * The layout of a folder dataset, checked: every class has pictures, the test
 * classes are the training ones, there are two classes or more. Class names
 * are the class folders' names (NFC), sorted; pictures are in path order
 * within a class, classes interleaved (the first picture of each class, then
 * the second, ...), so that the first N images hold every class. `where`
 * names a path relative to the folder in messages ('' is the folder itself).
 */
export function folderLayout(tree: FolderTree, where: (rel: string) => string): FolderLayout {
  const sub = (base: string) =>
    tree.folders
      .filter((f) => (base ? f.startsWith(`${base}/`) && !f.slice(base.length + 1).includes('/') : !f.includes('/')))
      .map((f) => f.slice(base ? base.length + 1 : 0))
      .sort();
  const top = sub('');
  const hasTrain = top.includes('train');
  const hasTest = top.includes('test');
  const dir = where('');
  if (hasTrain !== hasTest) throw new Error(`${dir} has a ${hasTrain ? 'train' : 'test'}/ folder but no ${hasTrain ? 'test' : 'train'}/ folder: give both (DIR/train/<class>/, DIR/test/<class>/), or put the class folders in DIR itself`);
  const groups = hasTrain ? ['train', 'test'] : ['all'];
  const classNames = sub(hasTrain ? 'train' : '').map((n) => n.normalize('NFC'));
  const classesAt = hasTrain ? where('train') : dir;
  if (classNames.length === 0) throw new Error(`${classesAt} has no class folders: expected one subfolder of pictures per class`);
  if (classNames.length === 1) throw new Error(`${classesAt} has a single class folder ('${classNames[0]}'): a classifier needs two classes or more`);
  const pictures = [...tree.pictures].sort();
  const files: FolderLayout['files'] = [];
  groups.forEach((group, g) => {
    const base = hasTrain ? group : '';
    const byClass: FolderLayout['files'][] = [];
    for (const name of sub(base)) {
      const label = classNames.indexOf(name.normalize('NFC'));
      if (label < 0) throw new Error(`class '${name}' of ${where(group)} is not among the training classes (${classNames.join(', ')})`);
      const prefix = base ? `${base}/${name}/` : `${name}/`;
      const paths = pictures.filter((p) => p.startsWith(prefix));
      if (paths.length === 0) throw new Error(`class folder ${where(prefix.slice(0, -1))} holds no pictures (PNG, JPEG, WebP, GIF or BMP)`);
      byClass.push(paths.map((rel) => ({ rel, label, group: g })));
    }
    for (let k = 0; byClass.some((c) => k < c.length); k++) for (const c of byClass) if (k < c.length) files.push(c[k]);
  });
  return { layout: hasTrain ? 'train-test' : 'classes', classNames, groupNames: groups, files };
}

/**
 * After decoding, with the pictures that failed left out (`decoded[i]` false
 * for file i): every class of every group that had pictures must keep one.
 */
export function checkDecodedClasses(layout: Pick<FolderLayout, 'classNames' | 'groupNames' | 'files'>, decoded: boolean[]): void {
  const { classNames, groupNames, files } = layout;
  for (let g = 0; g < groupNames.length; g++) {
    for (let c = 0; c < classNames.length; c++) {
      const had = files.some((f) => f.group === g && f.label === c);
      if (had && !files.some((f, i) => decoded[i] && f.group === g && f.label === c)) {
        throw new Error(`class '${classNames[c]}'${groupNames.length > 1 ? ` of ${groupNames[g]}/` : ''} has no picture that can be decoded`);
      }
    }
  }
}

/** What decoding a whole picture tells: its size and whether any pixel has colour. */
export interface ImageProbe {
  width: number;
  height: number;
  /** Whether any pixel is coloured (channels differ by more than the tolerance). */
  colour: boolean;
}

/** Whether 8-bit RGB pixels (`stride` bytes apart: 3 for RGB, 4 for RGBA) hold a colour beyond GRAY_TOLERANCE. */
export function hasColour(pixels: ArrayLike<number>, stride: number): boolean {
  for (let i = 0; i + 2 < pixels.length; i += stride) {
    if (Math.abs(pixels[i] - pixels[i + 1]) > GRAY_TOLERANCE || Math.abs(pixels[i + 1] - pixels[i + 2]) > GRAY_TOLERANCE) return true;
  }
  return false;
}

/**
 * The model input the decoded pictures decide: `imageSize` square when
 * given, else the pictures' own size when all agree, else DEFAULT_IMAGE_SIZE
 * square; `channels` when given, else 3 when any picture has colour, else 1.
 * `sizes` lists the distinct sizes found ('WxH').
 */
export function folderInputShape(probes: ImageProbe[], o: { imageSize?: number; channels?: 1 | 3 } = {}): { height: number; width: number; channels: 1 | 3; sizes: string[] } {
  if (!probes.length) throw new Error('no decoded picture to take the input size from');
  const sizes = [...new Set(probes.map((p) => `${p.width}x${p.height}`))];
  const first = probes[0];
  const [height, width] = o.imageSize !== undefined ? [o.imageSize, o.imageSize] : sizes.length === 1 ? [first.height, first.width] : [DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE];
  const channels: 1 | 3 = o.channels ?? (probes.some((p) => p.colour) ? 3 : 1);
  return { height, width, channels, sizes };
}
