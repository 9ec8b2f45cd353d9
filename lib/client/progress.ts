/**
 * Transfer progress as the user sees it: on a terminal one status line per transfer that fits
 * the terminal's width whatever it is, in human units; when output is piped, a few plain lines.
 */
import { formatBytes, type TransferProgress } from "../p2p/mod.ts";
import { displaySafe } from "../shared/display.ts";
import type { Terminal } from "./terminal.ts";
import { RecentIds } from "./recent_ids.ts";
import { fitWidth, textWidth } from "./text_width.ts";

/** Sizes are shown as the engine shows them in its own texts (`4.2 MiB`). */
export { formatBytes };

/** A rate in human units per second (`633 B/s`, `4.2 MiB/s`). */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** A duration as `7s`, `2m05s` or `1h02m`; `--` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  const minutes = Math.floor(whole / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/** The widest and narrowest progress bar, in columns (brackets not counted). */
const BAR_MAX = 30;
const BAR_MIN = 10;

/** What a line keeps, from the richest to the barest; the first that fits is used. */
const LAYOUTS: ReadonlyArray<{ bar: boolean; rate: boolean; eta: boolean; minName: number }> = [
  { bar: true, rate: true, eta: true, minName: 16 },
  { bar: false, rate: true, eta: true, minName: 12 },
  { bar: false, rate: true, eta: false, minName: 8 },
  { bar: false, rate: false, eta: false, minName: 6 },
];

/**
 * One status line for a transfer that fits `columns` terminal columns: bar, percentage, rate,
 * ETA, then `name → peer` (`←` when receiving), e.g.
 * `[############--------]  61% 144.1 MiB/s ETA 1s movie.bin → hans`. With room to spare the bar
 * grows (up to 30); short of room the name is shortened with `…`, then the bar, the ETA and the
 * rate are dropped in that order. Names are shown made safe (lib/shared/display.ts).
 */
export function progressLine(p: TransferProgress, columns = 80): string {
  const fraction = p.bytesTotal === 0 ? 1 : Math.min(1, p.bytesDone / p.bytesTotal);
  const rate = p.elapsedMs > 0 ? p.bytesDone / (p.elapsedMs / 1000) : 0;
  const eta = p.bytesDone >= p.bytesTotal
    ? 0
    : rate > 0
    ? (p.bytesTotal - p.bytesDone) / rate
    : NaN;
  const percent = `${String(Math.floor(fraction * 100)).padStart(3)}%`;
  const name = displaySafe(p.fileName);
  const peer = `${p.direction === "send" ? "→" : "←"} ${displaySafe(p.peer)}`;
  const bar = (width: number) => {
    const filled = Math.round(fraction * width);
    return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] `;
  };
  const nameWidth = textWidth(name);
  let line = "";
  for (const layout of LAYOUTS) {
    const info = [
      percent,
      ...(layout.rate ? [formatRate(rate)] : []),
      ...(layout.eta ? [`ETA ${formatDuration(eta)}`] : []),
    ].join(" ");
    // Columns left for the name beside everything else (the bar at its narrowest).
    const room = columns - (layout.bar ? BAR_MIN + 3 : 0) - textWidth(info) - 2 - textWidth(peer);
    line = `${info} ${fitWidth(name, Math.max(room, 1))} ${peer}`;
    if (room < Math.min(nameWidth, layout.minName)) continue;
    if (!layout.bar) return line;
    // The bar grows into whatever the whole name leaves, up to its widest.
    const barWidth = Math.min(BAR_MAX, BAR_MIN + Math.max(0, room - nameWidth));
    return `${bar(barWidth)}${line}`;
  }
  // Not even the barest layout fits: cut the line itself.
  return fitWidth(line, columns);
}

/** Options of a {@linkcode ProgressDisplay}. */
export interface ProgressOptions {
  /** Milliseconds, for the redraw throttle (default: Date.now). */
  now?: () => number;
}

/** Least time between two redraws of one transfer's status line. */
const REDRAW_MS = 100;

/**
 * Shows progress: on a terminal one keyed status line per active transfer, redrawn at most ten
 * times a second each (and whenever the terminal redraws, e.g. after a resize); piped, a line at
 * 25, 50 and 75 per cent of each transfer.
 */
export class ProgressDisplay {
  /** The latest report of each active transfer, which its status line shows. */
  readonly #active = new Map<string, TransferProgress>();
  readonly #drawnAt = new Map<string, number>();
  readonly #printed = new Map<string, number>();
  /** Transfers already finished: a report that arrives late must not bring their line back. */
  readonly #finished = new RecentIds(100);
  readonly #now: () => number;

  constructor(readonly terminal: Terminal, options: ProgressOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  update(progress: TransferProgress): void {
    const id = progress.ticketId;
    if (this.#finished.has(id)) return;
    if (this.terminal.interactive) {
      const first = !this.#active.has(id);
      this.#active.set(id, progress);
      const now = this.#now();
      const last = this.#drawnAt.get(id);
      const done = progress.bytesDone >= progress.bytesTotal;
      if (!first && !done && last !== undefined && now - last < REDRAW_MS) return;
      this.#drawnAt.set(id, now);
      // The line shows the latest report whenever it is drawn, a resize included.
      this.terminal.status(
        id,
        (columns) => progressLine(this.#active.get(id) ?? progress, columns),
      );
      return;
    }
    if (progress.bytesTotal === 0) return;
    const quarter = Math.floor((progress.bytesDone / progress.bytesTotal) * 4) * 25;
    if (quarter >= 100 || quarter <= (this.#printed.get(id) ?? 0)) return;
    this.#printed.set(id, quarter);
    const verb = progress.direction === "send" ? "Uploading" : "Receiving";
    this.terminal.print(`${verb} ${progress.fileName}: ${quarter}%`, "notice");
  }

  /** Removes a finished (or failed) transfer's status line. */
  finish(ticketId: string): void {
    this.#finished.firstTime(ticketId);
    const wasShown = this.#active.delete(ticketId);
    this.#drawnAt.delete(ticketId);
    this.#printed.delete(ticketId);
    if (this.terminal.interactive && wasShown) this.terminal.status(ticketId, null);
  }
}
