/** A one-line progress bar on stderr, only when stderr is a terminal (never in --json output). */
export class ProgressBar {
  private last = 0;
  private readonly enabled: boolean;
  constructor(
    private readonly label: string,
    private total: number,
    enabled = true,
  ) {
    this.enabled = enabled && process.stderr.isTTY === true;
  }
  setTotal(total: number): void {
    this.total = total;
  }
  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 100 && done < this.total) return;
    this.last = now;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const width = 30;
    const fill = Math.round(frac * width);
    process.stderr.write(`\r${this.label} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${done}/${this.total}`);
  }
  done(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}
