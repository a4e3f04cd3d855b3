/**
 * Tiling small images into one picture (figures written by the CLI:
 * reconstructions, perturbation grids, MultiMNIST pairs).
 */
export interface GridImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Float32Array;
}

/**
 * Lay out rows x cols tiles of h x w x channels, each scaled up by `scale`
 * (nearest neighbour), separated by `pad` pixels of `background`.
 */
export function tileGrid(tiles: (Float32Array | null)[][], h: number, w: number, channels: 1 | 3, options: { scale?: number; pad?: number; background?: number } = {}): GridImage {
  const { scale = 1, pad = 2, background = 0.5 } = options;
  const rows = tiles.length;
  const cols = Math.max(...tiles.map((r) => r.length));
  const th = h * scale;
  const tw = w * scale;
  const width = cols * tw + (cols + 1) * pad;
  const height = rows * th + (rows + 1) * pad;
  const data = new Float32Array(width * height * channels).fill(background);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < tiles[r].length; c++) {
      const tile = tiles[r][c];
      if (!tile) continue;
      const x0 = pad + c * (tw + pad);
      const y0 = pad + r * (th + pad);
      for (let y = 0; y < th; y++) {
        const sy = Math.floor(y / scale);
        for (let x = 0; x < tw; x++) {
          const sx = Math.floor(x / scale);
          for (let k = 0; k < channels; k++) data[((y0 + y) * width + x0 + x) * channels + k] = tile[(sy * w + sx) * channels + k];
        }
      }
    }
  }
  return { width, height, channels, data };
}
