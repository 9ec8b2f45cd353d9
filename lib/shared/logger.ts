/** Where library code reports what happened; the entry points decide where it goes. */
export interface Logger {
  /** A line the operator asked to see (the server's terminal lines). */
  info(message: string): void;
  /** Something went wrong for one session or peer, but the program carries on. */
  warn(message: string): void;
}

/** A logger that remembers lines, for tests. */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  readonly warnings: string[] = [];
  info(message: string): void {
    this.lines.push(message);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
}
