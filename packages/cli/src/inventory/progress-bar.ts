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

  constructor(
    private readonly out: ProgressSink,
    private readonly nowMs: () => number,
  ) {}

  update(update: ProgressUpdate): void {
    this.rate.sample(this.nowMs(), update.completedBytes);
    const line = formatProgressLine(update, this.rate.bytesPerSecond());
    if (line === this.lastLine) return;
    if (this.out.isTTY) this.out.write(`\r\x1b[K${line}`);
    // Without a terminal: one line per step, not per byte count.
    else if (update.status !== this.lastStatus || update.completedBytes === update.totalBytes) this.out.write(`${line}\n`);
    this.lastLine = line;
    this.lastStatus = update.status;
  }

  done(): void {
    if (this.out.isTTY && this.lastLine) this.out.write("\n");
  }
}
