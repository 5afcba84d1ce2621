import { TransferRate } from "@tessera/node";

/**
 * One progress line, redrawn in place on a terminal (`\r`) and printed once per step otherwise (logs, CI):
 *   pulling 6a0746a1ec1a  [##########----------]  52%  1.2 GB / 2.3 GB  84.1 MB/s
 */
export interface ProgressSink {
  write(text: string): void;
  isTTY?: boolean;
}

export interface ProgressUpdate {
  status: string;
  completedBytes?: number;
  totalBytes?: number;
}

const WIDTH = 20;

export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatProgressLine(update: ProgressUpdate, bytesPerSecond: number | undefined): string {
  const parts = [update.status];
  if (update.totalBytes && update.completedBytes !== undefined) {
    const ratio = Math.min(1, Math.max(0, update.completedBytes / update.totalBytes));
    const filled = Math.round(ratio * WIDTH);
    parts.push(`[${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}]`, `${String(Math.floor(ratio * 100)).padStart(3)}%`);
    parts.push(`${formatBytes(update.completedBytes)} / ${formatBytes(update.totalBytes)}`);
    if (bytesPerSecond !== undefined && bytesPerSecond > 0) parts.push(`${formatBytes(bytesPerSecond)}/s`);
  }
  return parts.join("  ");
}

export class ProgressBar {
  private readonly rate = new TransferRate();
  private lastLine = "";
  private lastStatus = "";
  private lastPrintedAt = -Infinity;
  private lastDrawnAt = -Infinity;

  /**
   * `pipeEveryMs`: without a terminal, also print a line this often (a long download in a log shows it is moving);
   * default never. On a terminal the line is redrawn at most every 100 ms.
   */
  constructor(
    private readonly out: ProgressSink,
    private readonly nowMs: () => number,
    private readonly options: { pipeEveryMs?: number } = {},
  ) {}

  update(update: ProgressUpdate): void {
    const now = this.nowMs();
    this.rate.sample(now, update.completedBytes);
    const line = formatProgressLine(update, this.rate.bytesPerSecond());
    if (line === this.lastLine) return;
    const last = update.completedBytes !== undefined && update.completedBytes === update.totalBytes;
    if (this.out.isTTY) {
      if (!last && update.status === this.lastStatus && now - this.lastDrawnAt < 100) return;
      this.out.write(`\r\x1b[K${line}`);
      this.lastDrawnAt = now;
    }
    // Without a terminal: one line per step (and every pipeEveryMs), not per byte count.
    else if (update.status !== this.lastStatus || last || now - this.lastPrintedAt >= (this.options.pipeEveryMs ?? Infinity)) {
      this.out.write(`${line}\n`);
      this.lastPrintedAt = now;
    }
    this.lastLine = line;
    this.lastStatus = update.status;
  }

  done(): void {
    if (this.out.isTTY && this.lastLine) this.out.write("\n");
  }
}
