/**
 * Transfer progress as the user sees it: one status line with a bar per active transfer on a
 * terminal, a few plain lines when output is piped.
 */
import type { TransferProgress } from "../p2p/mod.ts";
import type { Terminal } from "./terminal.ts";

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, "0")}s`;
}

/** One line describing a transfer's progress: bar, percentage, rate and ETA. */
export function progressLine(p: TransferProgress, width = 20): string {
  const fraction = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
  const filled = Math.round(fraction * width);
  const rate = p.elapsedMs > 0 ? p.bytesDone / (p.elapsedMs / 1000) : 0;
  const eta = rate > 0 ? (p.bytesTotal - p.bytesDone) / rate : Infinity;
  const arrow = p.direction === "send" ? `${p.fileName} → ${p.peer}` : `${p.fileName} ← ${p.peer}`;
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${
    String(Math.floor(fraction * 100)).padStart(3)
  }% ${formatBytes(rate)}/s ETA ${formatSeconds(eta)} ${arrow}`;
}

/**
 * Shows progress: on a terminal one status line with every active transfer, redrawn at most ten
 * times a second; piped, a line at 25, 50 and 75 per cent of each transfer.
 */
export class ProgressDisplay {
  readonly #active = new Map<string, TransferProgress>();
  readonly #printed = new Map<string, number>();
  #drawnAt = 0;

  constructor(readonly terminal: Terminal) {}

  update(progress: TransferProgress): void {
    if (this.terminal.interactive) {
      this.#active.set(progress.ticketId, progress);
      const now = Date.now();
      if (now - this.#drawnAt < 100 && progress.bytesDone < progress.bytesTotal) return;
      this.#drawnAt = now;
      this.terminal.status(progress.ticketId, () => progressLine(progress));
      return;
    }
    if (progress.bytesTotal === 0) return;
    const quarter = Math.floor((progress.bytesDone / progress.bytesTotal) * 4) * 25;
    if (quarter >= 100 || quarter <= (this.#printed.get(progress.ticketId) ?? 0)) return;
    this.#printed.set(progress.ticketId, quarter);
    const verb = progress.direction === "send" ? "Uploading" : "Receiving";
    this.terminal.print(`${verb} ${progress.fileName}: ${quarter}%`, "notice");
  }

  finish(ticketId: string): void {
    this.#active.delete(ticketId);
    this.#printed.delete(ticketId);
    if (this.terminal.interactive) this.terminal.status(ticketId, null);
  }
}
