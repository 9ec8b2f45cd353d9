/** Transfer progress (lib/client/progress.ts): human units, lines that fit, and the display. */
import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatRate,
  ProgressDisplay,
  progressLine,
} from "../../lib/client/progress.ts";
import type { LineKind, StatusRender, Terminal } from "../../lib/client/terminal.ts";
import { textWidth } from "../../lib/client/text_width.ts";
import type { TransferProgress } from "../../lib/p2p/mod.ts";
import { hasUnsafeCharacters } from "../../lib/shared/display.ts";

const SIZES: [number, string][] = [
  [0, "0 B"],
  [1, "1 B"],
  [633.23665618847, "633 B"],
  [1023.4, "1023 B"],
  [1023.6, "1.0 KiB"],
  [1024, "1.0 KiB"],
  [1536, "1.5 KiB"],
  [4.2 * 1024 ** 2, "4.2 MiB"],
  [1024 ** 2 - 1, "1.0 MiB"],
  [144.06 * 1024 ** 2, "144.1 MiB"],
  [1024 ** 3, "1.0 GiB"],
  [2.5 * 1024 ** 4, "2.5 TiB"],
  [NaN, "? B"],
];

for (const [bytes, text] of SIZES) {
  Deno.test(`formatBytes(${bytes}) is ${text}`, () => {
    assert.equal(formatBytes(bytes), text);
  });
}

Deno.test("formatRate() is a size per second, never with a long tail of digits", () => {
  assert.equal(formatRate(633.23665618847), "633 B/s");
  assert.equal(formatRate(4.2 * 1024 ** 2), "4.2 MiB/s");
  assert.equal(formatRate(0), "0 B/s");
});

const DURATIONS: [number, string][] = [
  [0, "0s"],
  [0.2, "1s"],
  [59, "59s"],
  [59.5, "1m00s"],
  [125, "2m05s"],
  [3599, "59m59s"],
  [3720, "1h02m"],
  [Infinity, "--"],
  [NaN, "--"],
];

for (const [seconds, text] of DURATIONS) {
  Deno.test(`formatDuration(${seconds}) is ${text}`, () => {
    assert.equal(formatDuration(seconds), text);
  });
}

/** 61 % of 100 MB in 404 ms: about 144 MiB/s, ETA 1 s. */
function report(fields: Partial<TransferProgress> = {}): TransferProgress {
  return {
    ticketId: "t1",
    direction: "send",
    peer: "hans",
    fileName: "movie.bin",
    bytesDone: 61_000_000,
    bytesTotal: 100_000_000,
    elapsedMs: 404,
    ...fields,
  };
}

Deno.test("progressLine() shows bar, percentage, rate, ETA, name and peer when there is room", () => {
  assert.equal(
    progressLine(report(), 80),
    "[##################------------]  61% 144.0 MiB/s ETA 1s movie.bin → hans",
  );
  assert.equal(
    progressLine(report({ direction: "receive", peer: "yoda" }), 60),
    "[##########-------]  61% 144.0 MiB/s ETA 1s movie.bin ← yoda",
  );
});

const NAMES = [
  "movie.bin",
  "a very long file name for the holidays of 2021, final version (2).mkv",
  "日本語のとても長いファイル名前です、本当に長い.txt",
  "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀.png",
  "evil\u202etxt.exe",
];
const WIDTHS = [200, 120, 100, 80, 60, 40, 30, 20, 12, 5, 1];

for (const name of NAMES) {
  Deno.test(`progressLine() fits every width for ${JSON.stringify(name.slice(0, 20))}`, () => {
    for (const columns of WIDTHS) {
      for (const direction of ["send", "receive"] as const) {
        const line = progressLine(report({ fileName: name, direction }), columns);
        assert.ok(
          textWidth(line) <= columns,
          `${columns} columns: ${JSON.stringify(line)} is ${textWidth(line)} wide`,
        );
        assert.equal(hasUnsafeCharacters(line), false, `shown made safe: ${line}`);
      }
    }
  });
}

Deno.test("progressLine() shortens a long name with … and keeps the peer", () => {
  const name = NAMES[1]!;
  const line = progressLine(report({ fileName: name }), 80);
  assert.equal(textWidth(line), 80);
  assert.match(line, /^\[#+-+\] {2}61% 144\.0 MiB\/s ETA 1s a very long .*… → hans$/);
  const wide = progressLine(report({ fileName: NAMES[2]! }), 60);
  assert.ok(wide.includes("…") && wide.endsWith(" → hans"), wide);
  assert.ok(textWidth(wide) <= 60);
});

Deno.test("progressLine() grows the bar into spare room, up to 30, and drops it when narrow", () => {
  const bar = (line: string) => /^\[([#-]+)\]/.exec(line)?.[1]?.length ?? 0;
  assert.equal(bar(progressLine(report(), 120)), 30);
  assert.equal(bar(progressLine(report(), 80)), 30);
  assert.equal(bar(progressLine(report(), 60)), 17);
  assert.equal(bar(progressLine(report({ fileName: NAMES[1]! }), 60)), 10);
  assert.equal(bar(progressLine(report(), 40)), 0);
  assert.equal(progressLine(report(), 40), " 61% 144.0 MiB/s ETA 1s movie.bin → hans");
  assert.equal(progressLine(report(), 30), " 61% movie.bin → hans");
});

Deno.test("progressLine() shows a full bar for an empty file and -- for an unknown ETA", () => {
  const empty = progressLine(report({ bytesDone: 0, bytesTotal: 0, elapsedMs: 0 }), 80);
  assert.match(empty, /^\[#+\] 100% 0 B\/s ETA 0s movie\.bin → hans$/);
  const stalled = progressLine(report({ bytesDone: 0, elapsedMs: 0 }), 80);
  assert.match(stalled, /^\[-+\] {3}0% 0 B\/s ETA -- movie\.bin → hans$/);
  const small = progressLine(report({ bytesDone: 633, bytesTotal: 10_000, elapsedMs: 1000 }), 80);
  assert.match(small, / 633 B\/s ETA 15s /);
});

/** A terminal that records printed lines and status lines. */
class RecordingTerminal implements Terminal {
  readonly printed: string[] = [];
  readonly statuses = new Map<string, StatusRender>();
  statusCalls = 0;

  constructor(readonly interactive: boolean) {}

  readLine(): Promise<string | null> {
    return Promise.resolve(null);
  }

  readSecret(): Promise<string | null> {
    return Promise.resolve(null);
  }

  print(line: string, _kind?: LineKind): void {
    this.printed.push(line);
  }

  status(key: string, render: StatusRender | null): void {
    this.statusCalls++;
    if (render) this.statuses.set(key, render);
    else this.statuses.delete(key);
  }

  close(): void {}
}

Deno.test("ProgressDisplay piped prints the quarters of each transfer once, as before", () => {
  const terminal = new RecordingTerminal(false);
  const display = new ProgressDisplay(terminal);
  const total = 1000;
  for (const done of [0, 100, 250, 300, 500, 740, 760, 990, 1000]) {
    display.update(report({ bytesDone: done, bytesTotal: total, fileName: "x" }));
  }
  display.update(
    report({ ticketId: "t2", direction: "receive", bytesDone: 600, bytesTotal: total }),
  );
  display.finish("t1");
  assert.deepEqual(terminal.printed, [
    "Uploading x: 25%",
    "Uploading x: 50%",
    "Uploading x: 75%",
    "Receiving movie.bin: 50%",
  ]);
  assert.equal(terminal.statusCalls, 0);
});

Deno.test("ProgressDisplay on a terminal keeps one status line per transfer, throttled each", () => {
  const terminal = new RecordingTerminal(true);
  let now = 0;
  const display = new ProgressDisplay(terminal, { now: () => now });
  display.update(report({ ticketId: "a", bytesDone: 10 }));
  display.update(report({ ticketId: "b", fileName: "other.bin", direction: "receive" }));
  assert.deepEqual([...terminal.statuses.keys()], ["a", "b"]);
  assert.equal(terminal.statusCalls, 2);
  // Within 100 ms a transfer is not redrawn, but its line shows the latest report when drawn.
  now = 50;
  display.update(report({ ticketId: "a", bytesDone: 50_000_000 }));
  assert.equal(terminal.statusCalls, 2);
  assert.match(terminal.statuses.get("a")!(80), / 50% /);
  now = 120;
  display.update(report({ ticketId: "a", bytesDone: 60_000_000 }));
  assert.equal(terminal.statusCalls, 3);
  assert.ok(textWidth(terminal.statuses.get("b")!(40)) <= 40);
  // The end is always drawn; then the line goes, and a late report does not bring it back.
  now = 130;
  display.update(report({ ticketId: "a", bytesDone: 100_000_000 }));
  assert.equal(terminal.statusCalls, 4);
  display.finish("a");
  display.update(report({ ticketId: "a", bytesDone: 100_000_000 }));
  assert.deepEqual([...terminal.statuses.keys()], ["b"]);
  assert.equal(terminal.printed.length, 0);
});
