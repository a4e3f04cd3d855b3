/**
 * Training-time augmentation of "Dynamic Routing Between Capsules" (section
 * 5): each image shifted by up to 2 pixels in each direction, with zero
 * padding, drawn anew every time the image is seen.
 */
/**
 * Write `src` (h x w x c bytes, any size and channel count) shifted by
 * (dx, dy), and mirrored left to right first when `flip`, into `dst` as
 * floats in [0, 1]; pixels shifted in from outside are 0. Horizontal flips
 * are the usual augmentation for photographs and clothing (Fashion-MNIST),
 * whose classes do not change in a mirror; digits do, so it is off by default.
 */
export function shiftImage(src: Uint8Array, dst: Float32Array, dstOffset: number, h: number, w: number, c: number, dx: number, dy: number, flip = false): void {
  const scale = 1 / 255;
  for (let y = 0; y < h; y++) {
    const sy = y - dy;
    for (let x = 0; x < w; x++) {
      const sx = flip ? w - 1 - (x - dx) : x - dx;
      const o = dstOffset + (y * w + x) * c;
      if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
        for (let k = 0; k < c; k++) dst[o + k] = 0;
      } else {
        const s = (sy * w + sx) * c;
        for (let k = 0; k < c; k++) dst[o + k] = src[s + k] * scale;
      }
    }
  }
}
