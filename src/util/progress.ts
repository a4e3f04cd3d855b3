/**
 * The one progress reporter: a bar with counts, named values (loss,
 * accuracy), throughput and ETA. On a terminal it redraws one line; otherwise
 * (logs, CI) it prints a line at most every `intervalSeconds`.
 */
export interface ProgressOptions {
  label: string;
  total: number;
  /** Items (images) per unit of `done`, for throughput. */
  itemsPerStep?: number;
  write?: (s: string) => void;
  isTTY?: boolean;
  intervalSeconds?: number;
  enabled?: boolean;
  /** What the throughput counts, shown as UNIT/s [default: img]. */
  unit?: string;
  /** Units already done before this run (a resumed epoch): not counted in the throughput. */
  startAt?: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class Progress {
  private readonly opts: Required<Omit<ProgressOptions, 'write'>> & { write: (s: string) => void };
  private readonly start = performance.now();
  private lastPrint = 0;
  private printedDone = -1;
  private done = 0;
  private fields: Record<string, string | number> = {};

  constructor(options: ProgressOptions) {
    this.opts = {
      itemsPerStep: 1,
      write: (s) => process.stderr.write(s),
      isTTY: typeof process !== 'undefined' && !!process.stderr?.isTTY,
      // Off a terminal, a line every 30 s (CAPSNET_PROGRESS_INTERVAL overrides; browsers have no process).
      intervalSeconds: Number((typeof process !== 'undefined' && process.env.CAPSNET_PROGRESS_INTERVAL) || 30),
      enabled: true,
      startAt: 0,
      unit: 'img',
      ...options,
    } as typeof this.opts;
    this.done = this.opts.startAt;
  }

  /** Items per second since this reporter started. */
  get rate(): number {
    const secs = (performance.now() - this.start) / 1000;
    return secs > 0 ? ((this.done - this.opts.startAt) * this.opts.itemsPerStep) / secs : 0;
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.start) / 1000;
  }

  update(done: number, fields: Record<string, string | number> = {}): void {
    this.done = done;
    this.fields = fields;
    if (!this.opts.enabled) return;
    const now = performance.now();
    const interval = this.opts.isTTY ? 200 : this.opts.intervalSeconds * 1000;
    if (now - this.lastPrint < interval && done < this.opts.total) return;
    this.lastPrint = now;
    this.render(false);
  }

  line(): string {
    const { total, label, itemsPerStep, unit } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const rate = this.rate;
    const remaining = rate > 0 ? ((total - this.done) * itemsPerStep) / rate : NaN;
    const extra = Object.entries(this.fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
      .join('  ');
    return `${label} [${bar}] ${this.done}/${total}  ${extra}${extra ? '  ' : ''}${rate.toFixed(1)} ${unit}/s  ETA ${formatDuration(remaining)}`;
  }

  private render(final: boolean): void {
    this.printedDone = this.done;
    const text = this.line();
    if (this.opts.isTTY) this.opts.write(`\r\x1b[2K${text}${final ? '\n' : ''}`);
    else this.opts.write(`${text}\n`);
  }

  /** Print the final state unless it is already on screen, and end the line. */
  finish(): void {
    if (!this.opts.enabled) return;
    if (this.printedDone !== this.done) this.render(true);
    else if (this.opts.isTTY) this.opts.write('\n');
  }
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(4);
}
