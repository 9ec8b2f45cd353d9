/**
 * Commits batches of SQL statements to one SQLite file on a thread of its own, so that the
 * server's event loop never waits for the disk: while one batch is being committed (and synced),
 * the server goes on handling input and gathers the next batch.
 */
import type { SqlValue } from "./statements.ts";

/** One statement to run: its index in the writer's statement list, and its parameters. */
export type Step = [statement: number, params: SqlValue[]];

// Inline (a blob URL) so that a compiled chat-server needs no extra module for it.
const WORKER_SOURCE = `
import { DatabaseSync } from "node:sqlite";
let db;
let statements = [];
self.onmessage = ({ data }) => {
  const { seq } = data;
  try {
    if (data.open) {
      db = new DatabaseSync(data.open.path);
      for (const pragma of data.open.pragmas) db.exec(pragma);
      statements = data.open.statements.map((sql) => db.prepare(sql));
    } else if (data.close) {
      db?.close();
      db = undefined;
    } else {
      db.exec("BEGIN IMMEDIATE");
      try {
        for (const [index, params] of data.steps) statements[index].run(...params);
        db.exec("COMMIT");
      } catch (error) {
        db.exec("ROLLBACK");
        throw error;
      }
    }
    self.postMessage({ seq });
  } catch (error) {
    self.postMessage({ seq, error: String(error && error.message || error) });
  }
};
`;
let workerUrl: string | undefined;

interface Waiting {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The writer thread of one database file. */
export class SqliteWriter {
  readonly #worker: Worker;
  /** Requests sent and not yet answered, in the order sent (the thread answers in order). */
  readonly #waiting = new Map<number, Waiting>();
  #nextSeq = 1;
  #dead: Error | undefined;

  /** Opens `path` on the thread with `pragmas`, preparing `statements` (indexed by Step). */
  constructor(path: string, pragmas: string[], statements: string[]) {
    workerUrl ??= URL.createObjectURL(
      new Blob([WORKER_SOURCE], { type: "application/javascript" }),
    );
    this.#worker = new Worker(workerUrl, { type: "module" });
    this.#worker.onmessage = ({ data }: MessageEvent<{ seq: number; error?: string }>) => {
      const waiting = this.#waiting.get(data.seq);
      this.#waiting.delete(data.seq);
      if (data.error === undefined) waiting?.resolve();
      else waiting?.reject(new Error(data.error));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(new Error(`The database writer failed: ${event.message}`));
    };
    // Its failure is reported to whoever commits next.
    this.#send({ open: { path, pragmas, statements } }).catch(() => {});
  }

  #send(message: Record<string, unknown>): Promise<void> {
    if (this.#dead) return Promise.reject(this.#dead);
    const seq = this.#nextSeq++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(seq, { resolve, reject });
      this.#worker.postMessage({ seq, ...message });
    });
  }

  #fail(error: Error): void {
    if (this.#dead) return;
    this.#dead = error;
    this.#worker.terminate();
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }

  /** Runs `steps` in one transaction; resolves once it is committed, rejects if it was not. */
  commit(steps: Step[]): Promise<void> {
    return this.#send({ steps });
  }

  /** Closes the file once what was sent before is done, and stops the thread. */
  async close(): Promise<void> {
    try {
      await this.#send({ close: true });
    } finally {
      this.#fail(new Error("The database is closed"));
    }
  }
}
