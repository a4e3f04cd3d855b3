/**
 * Which test images the visualizer offers to choose from, in one place for
 * the build and `capsnet viz` (Node, build.ts) and the Train panel's folder
 * of pictures (the page's worker): plain arithmetic on the labels.
 */

/** Test images per class the page offers. */
export const SAMPLES_PER_CLASS = 10;

/**
 * The first test images of each class, in class order, SAMPLES_PER_CLASS of
 * each (fewer when there are more than 10 classes, so that the page offers
 * about 100 images, but at least one per class).
 */
export function sampleIndices(labels: ArrayLike<number>, numClasses: number): number[] {
  const perClass = Math.max(1, Math.min(SAMPLES_PER_CLASS, Math.floor((10 * SAMPLES_PER_CLASS) / numClasses)));
  const picked: number[] = [];
  for (let c = 0; c < numClasses; c++) {
    let n = 0;
    for (let i = 0; i < labels.length && n < perClass; i++) {
      if (labels[i] === c) {
        picked.push(i);
        n++;
      }
    }
  }
  return picked;
}
