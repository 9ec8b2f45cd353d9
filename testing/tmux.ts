/**
 * A real pseudo-terminal for end-to-end tests: a tmux server of its own (its own socket), one
 * window of a given size running a shell, keys sent as a person types them, and the pane read
 * back as text (scrollback included). Disposing it kills the tmux server:
 *
 *     await using tmux = await startTmux({ columns: 80, rows: 24, cwd: dir });
 *     await tmux.type("./chat-client 127.0.0.1 12000 0");
 *     await tmux.keys("Enter");
 *     await tmux.waitFor((text) => text.includes("Username:"));
 */

/** Whether tmux can be run here (it needs --allow-run and the program). */
export async function hasTmux(): Promise<boolean> {
  if (Deno.permissions.querySync({ name: "run" }).state !== "granted") return false;
  try {
    const { success } = await new Deno.Command("tmux", {
      args: ["-V"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** A tmux server with one pane; see the module comment. */
export interface Tmux extends AsyncDisposable {
  /** Types `text` literally (no key names). */
  type(text: string): Promise<void>;
  /** Presses keys by tmux name: `Enter`, `C-c`, `Left`... */
  keys(...names: string[]): Promise<void>;
  /** The pane's rows, scrollback first, trailing blank rows dropped. */
  rows(): Promise<string[]>;
  /** Like rows(), with the rows the terminal wrapped joined into the line they came from. */
  lines(): Promise<string[]>;
  /** Waits until `test` holds for the joined lines; fails after `timeoutMs` with the pane. */
  waitFor(test: (text: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  /** Kills the tmux server and everything in it; idempotent. */
  kill(): Promise<void>;
}

/** Starts a tmux server of its own with a `columns`×`rows` pane running `sh` in `cwd`. */
export async function startTmux(
  options: { columns: number; rows: number; cwd: string; env?: Record<string, string> },
): Promise<Tmux> {
  const socket = `toom-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const env = { ...options.env, TMUX: "", PS1: "$ ", ENV: "" };
  const tmux = async (...args: string[]): Promise<string> => {
    const result = await new Deno.Command("tmux", {
      args: ["-L", socket, "-f", "/dev/null", ...args],
      cwd: options.cwd,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    if (!result.success) {
      throw new Error(`tmux ${args[0]} failed: ${decoder.decode(result.stderr).trim()}`);
    }
    return decoder.decode(result.stdout);
  };
  let killing: Promise<void> | undefined;
  const kill = () => killing ??= tmux("kill-server").then(() => {}, () => {});
  const capture = async (join: boolean): Promise<string[]> => {
    const text = await tmux("capture-pane", "-p", ...(join ? ["-J"] : []), "-S", "-", "-t", "main");
    const rows = text.split("\n").map((row) => row.trimEnd());
    while (rows.length > 0 && rows.at(-1) === "") rows.pop();
    return rows;
  };
  await tmux(
    "new-session",
    "-d",
    "-s",
    "main",
    "-x",
    String(options.columns),
    "-y",
    String(options.rows),
    "sh",
  );
  try {
    await tmux("set-option", "-g", "history-limit", "10000");
  } catch (error) {
    await kill();
    throw error;
  }
  const session: Tmux = {
    type: async (text) => void await tmux("send-keys", "-t", "main", "-l", text),
    keys: async (...names) => void await tmux("send-keys", "-t", "main", ...names),
    rows: () => capture(false),
    lines: () => capture(true),
    async waitFor(test, what, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        const text = (await capture(true)).join("\n");
        if (test(text)) return text;
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; pane:\n${text}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    kill,
    [Symbol.asyncDispose]: kill,
  };
  return session;
}
