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
  /** Replaces the whole file atomically: a reader sees the old text or the new, never a mix. */
  replace(path: string, text: string): Promise<void>;
}

/** Files on disk; `replace` writes a temporary file beside the target and renames it. */
export class DiskFiles implements TextFiles {
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

  async replace(path: string, text: string): Promise<void> {
    const temp = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(temp, text);
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
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

/**
 * Serialises writes to one file so they land in the order the state changed, however long
 * each takes. Each call returns when its own write is done.
 */
export class OrderedWriter {
  #tail: Promise<void> = Promise.resolve();

  constructor(readonly files: TextFiles, readonly path: string) {}

  /** Appends text after every earlier write. */
  append(text: string): Promise<void> {
    return this.#then(() => this.files.append(this.path, text));
  }

  /** Replaces the file after every earlier write. */
  replace(text: string): Promise<void> {
    return this.#then(() => this.files.replace(this.path, text));
  }

  #then(write: () => Promise<void>): Promise<void> {
    const done = this.#tail.then(write);
    // A failed write must not block later ones; the caller of this one sees the failure.
    this.#tail = done.catch(() => {});
    return done;
  }
}
