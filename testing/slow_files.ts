/**
 * Text files for tests of code that writes through TextFiles: their writes finish only when the
 * test says, so the order in which writes start and finish can be checked.
 */
import { MemoryFiles, type TextFiles } from "../lib/server/files.ts";

/** Files whose writes finish only when the test says, to check ordering. */
export class SlowFiles implements TextFiles {
  readonly inner = new MemoryFiles();
  readonly started: string[] = [];
  readonly #gates: (() => void)[] = [];

  read(path: string): Promise<string | undefined> {
    return this.inner.read(path);
  }

  append(path: string, text: string): Promise<void> {
    return this.#slow(`append ${text}`, () => this.inner.append(path, text));
  }

  replace(path: string, text: string): Promise<void> {
    return this.#slow(`replace ${text}`, () => this.inner.replace(path, text));
  }

  /** Lets the oldest waiting write finish. */
  release(): void {
    this.#gates.shift()?.();
  }

  get waiting(): number {
    return this.#gates.length;
  }

  #slow(label: string, write: () => Promise<void>): Promise<void> {
    this.started.push(label);
    if (label.includes("FAIL")) return Promise.reject(new Error("write failed"));
    return new Promise<void>((resolve) => this.#gates.push(resolve)).then(write);
  }
}

/** Lets every pending promise callback run (a few rounds of microtasks; no timers). */
export async function settleMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
