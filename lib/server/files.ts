/**
 * The text files the server keeps (credentials, userlog, messagelog), behind one small
 * interface so the stores run against the disk in production and against memory in tests.
 */

/** Whole-line text files that are never left torn. */
export interface TextFiles {
  /** The file's text, or undefined when it does not exist. */
  read(path: string): Promise<string | undefined>;
  /** Appends text in one write (callers pass whole lines). */
  append(path: string, text: string): Promise<void>;
  /**
   * Replaces the whole file atomically: a reader sees the old text or the new, never a mix. The
   * file keeps its permission bits; a new file gets `newFileMode` when given.
   */
  replace(path: string, text: string, options?: ReplaceOptions): Promise<void>;
  /**
   * A cheap token that changes whenever the file does (its identity, size and modification time),
   * or undefined when there is none: a reader may skip rereading the file while it is the same.
   */
  stamp?(path: string): Promise<string | undefined>;
}

/** How `replace` creates a file that does not exist yet. */
export interface ReplaceOptions {
  /** Permission bits for a new file (e.g. 0o600 for credentials); otherwise the default. */
  newFileMode?: number;
  /**
   * The new text is on the disk before `replace` resolves (synced, and the directory entry too),
   * so it survives a power loss, not just a crash of the process.
   */
  durable?: boolean;
}

/**
 * Files on disk; `replace` writes a temporary file beside the target and renames it, giving it the
 * target's permission bits first (the temporary file is private until then).
 */
export class DiskFiles implements TextFiles {
  async stamp(path: string): Promise<string | undefined> {
    try {
      const info = await Deno.stat(path);
      if (info.ino === null || info.mtime === null) return undefined;
      return `${info.dev}:${info.ino}:${info.size}:${info.mtime.getTime()}`;
    } catch {
      return undefined;
    }
  }

  async read(path: string): Promise<string | undefined> {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async append(path: string, text: string): Promise<void> {
    await Deno.writeTextFile(path, text, { append: true, create: true });
  }

  async replace(path: string, text: string, options: ReplaceOptions = {}): Promise<void> {
    const temp = `${path}.${crypto.randomUUID()}.tmp`;
    const mode = await modeOf(path) ?? options.newFileMode;
    try {
      if (mode === undefined || Deno.build.os === "windows") {
        await Deno.writeTextFile(temp, text);
      } else {
        // Created private, then given the mode: chmod is not narrowed by the umask.
        await Deno.writeTextFile(temp, text, { mode: 0o600 });
        await Deno.chmod(temp, mode);
      }
      if (options.durable) await syncFile(temp);
      await Deno.rename(temp, path);
      if (options.durable) await syncDirectoryOf(path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
  }
}

/** Flushes a file's contents to the disk. */
async function syncFile(path: string): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.sync();
}

/** Flushes a directory's entries (a rename into it) to the disk, where the system allows it. */
async function syncDirectoryOf(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const directory = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    using handle = await Deno.open(directory, { read: true });
    await handle.sync();
  } catch {
    // Some systems cannot open or sync a directory; the rename is still atomic.
  }
}

/** A file's permission bits, or undefined when it does not exist (or the system has none). */
async function modeOf(path: string): Promise<number | undefined> {
  try {
    const mode = (await Deno.stat(path)).mode;
    return mode === null ? undefined : mode & 0o777;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Files in memory, for tests that run with `--allow-net` alone. */
export class MemoryFiles implements TextFiles {
  readonly contents = new Map<string, string>();

  read(path: string): Promise<string | undefined> {
    return Promise.resolve(this.contents.get(path));
  }

  append(path: string, text: string): Promise<void> {
    this.contents.set(path, (this.contents.get(path) ?? "") + text);
    return Promise.resolve();
  }

  replace(path: string, text: string): Promise<void> {
    this.contents.set(path, text);
    return Promise.resolve();
  }
}

/** How an OrderedWriter renders the whole file and recovers from a failed write. */
export interface WriterOptions {
  /**
   * The file's whole text as the state is now: what `rewrite()` writes, and what rewrites the file
   * after a failed write. The owner changes its state and queues the write that records the change
   * in one synchronous step, so a snapshot taken as a write starts covers every write queued so far.
   */
  snapshot?: () => string;
  /** Called with a write's error; the writer then carries on instead of failing its callers. */
  onError?: (error: unknown) => void;
}

interface QueuedWrite {
  kind: "append" | "replace" | "rewrite";
  text: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Serialises writes to one file so they land in the order the state changed, however long each
 * takes. Writes queued while one is in flight go out together as one write: appends are joined, a replace (which carries the whole file as of when it
 * was queued) supersedes everything queued before it, and a rewrite (the snapshot, taken as the
 * write starts) supersedes everything queued. So a burst of K rewrites renders and writes the file
 * once, not K times. Each call resolves when the write holding its change is done.
 */
export class OrderedWriter {
  #queue: QueuedWrite[] = [];
  #writing = false;
  #stale = false;
  readonly #options: WriterOptions;

  constructor(readonly files: TextFiles, readonly path: string, options: WriterOptions = {}) {
    this.#options = options;
  }

  /** Appends text after every earlier write. */
  append(text: string): Promise<void> {
    return this.#enqueue("append", text);
  }

  /** Replaces the file after every earlier write. */
  replace(text: string): Promise<void> {
    return this.#enqueue("replace", text);
  }

  /**
   * Replaces the file with the snapshot, rendered only when the write starts: however many
   * rewrites queue up meanwhile, the file is rendered and written once. Needs `snapshot`.
   */
  rewrite(): Promise<void> {
    if (!this.#options.snapshot) throw new TypeError("OrderedWriter.rewrite() needs a snapshot");
    return this.#enqueue("rewrite", "");
  }

  #enqueue(kind: QueuedWrite["kind"], text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind, text, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      const { snapshot, onError } = this.#options;
      const whole = this.#stale || batch.some((write) => write.kind === "rewrite")
        ? snapshot
        : undefined;
      const lastReplace = whole ? -1 : batch.findLastIndex((write) => write.kind === "replace");
      const tail = whole ? "" : batch.slice(lastReplace + 1).map((write) => write.text).join("");
      try {
        if (whole) {
          // The whole file as the state is now, which covers every write in this batch (and, after
          // a failed write, brings the file back in line).
          await this.files.replace(this.path, whole());
        } else if (lastReplace >= 0) {
          await this.files.replace(this.path, batch[lastReplace]!.text + tail);
        } else {
          await this.files.append(this.path, tail);
        }
        this.#stale = false;
        for (const write of batch) write.resolve();
      } catch (error) {
        if (onError) {
          // The state in memory stands; the file is brought back in line at the next write.
          this.#stale = true;
          onError(error);
          for (const write of batch) write.resolve();
        } else {
          // The callers whose text was in this write hear of it; later writes still go ahead.
          for (const write of batch) write.reject(error);
        }
      }
    }
    this.#writing = false;
  }
}
