/**
 * Temporary directories that remove themselves: `await using dir = await tempDir("x_");` is gone
 * (with everything in it) when the scope ends, whether the test passed or failed.
 */

/** A temporary directory, removed with its contents when disposed. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
  /** Removes the directory and its contents; idempotent, and a missing directory is fine. */
  remove(): Promise<void>;
}

/** Makes a fresh temporary directory whose name starts with `prefix`. */
export async function tempDir(prefix?: string): Promise<TempDir> {
  const path = await Deno.makeTempDir(prefix === undefined ? {} : { prefix });
  let removing: Promise<void> | undefined;
  const remove = () =>
    removing ??= Deno.remove(path, { recursive: true }).catch((error: unknown) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  return { path, remove, [Symbol.asyncDispose]: remove };
}
