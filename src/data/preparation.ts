/**
 * How a picture becomes a model input, as recorded in a model's metadata
 * (`preparation`). Plain data, no decoder, so that the browser reads it too:
 * the visualizer prepares an uploaded picture as the model's training
 * pictures were. ./imageDecode.ts does the decoding in Node.
 */

/**
 * How a picture becomes a model input: decoded, transparency composited on
 * black, stretched to height x width (no cropping, so nothing is cut off),
 * converted to one channel (luminance) or three (sRGB), as bytes 0-255.
 */
export interface ImagePreparation {
  kind: 'resize';
  height: number;
  width: number;
  channels: 1 | 3;
  fit: 'fill';
  background: 'black';
}

export function imagePreparation(height: number, width: number, channels: 1 | 3): ImagePreparation {
  return { kind: 'resize', height, width, channels, fit: 'fill', background: 'black' };
}

/** A stored preparation, checked (a model's metadata is read from disk). */
export function parseImagePreparation(value: unknown, source: string): ImagePreparation {
  const p = value as Partial<ImagePreparation> | undefined;
  if (!p || p.kind !== 'resize' || !(Number.isInteger(p.height) && p.height! > 0 && Number.isInteger(p.width) && p.width! > 0) || (p.channels !== 1 && p.channels !== 3)) {
    throw new Error(`${source}: the model's metadata has no valid image preparation (kind 'resize', height, width, channels 1 or 3)`);
  }
  return imagePreparation(p.height!, p.width!, p.channels);
}
