/**
 * Helper of bench/p2p.ts: `UPD` of a file between two real client processes. Starts ./chat-server
 * (port 0) and two ./chat-client processes (UDP port 0, stdin piped, so plain mode), each in its
 * own temporary directory, logged in as yoda and hans, and times `UPD hans <file>` from the line
 * being written to yoda's stdin until yoda prints `<file> has been uploaded`. Each transfer is
 * checked: hans prints `Received <file> from yoda` and `yoda_<file>` in hans's directory has the
 * source's SHA-256. Only talks to 127.0.0.1.
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const SERVER_BIN = `${ROOT}/chat-server`;
const CLIENT_BIN = `${ROOT}/chat-client`;
const PROMPT =
  "Enter one of the following commands (MSG, DLT, EDT, RDM, ATU, OUT, UPD), or help:\n";
/** Longest wait for any one expected line (a failsafe; a 64 MiB UPD takes about a second). */
const WAIT_MS = 60_000;

/** Every program started here that has not exited yet, so a failsafe can kill them. */
const running = new Set<Program>();
/** Every temporary directory made here and not removed yet. */
const tempDirs = new Set<string>();

/**
 * For a failsafe about to exit: kills (SIGKILL) every server or client process this module
 * started that is still running and removes their temporary directories.
 */
export function abandonPrograms(): void {
  for (const program of running) program.kill("SIGKILL");
  for (const dir of tempDirs) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Best effort.
    }
  }
}

async function makeTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  tempDirs.add(dir);
  return dir;
}

async function removeTempDir(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  tempDirs.delete(dir);
}

/** Builds ./chat-server and ./chat-client with `deno task build` unless both exist. */
async function ensureBuilt(): Promise<void> {
  const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
  if (await exists(SERVER_BIN) && await exists(CLIENT_BIN)) return;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["task", "build"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!result.success) throw new Error("deno task build failed");
}

/** A running program whose stdout (and stderr) are collected as they arrive. */
class Program {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #readers: Promise<void>[];
  #waiters: Array<() => void> = [];
  #stdoutEnded = false;

  constructor(readonly name: string, path: string, args: string[], cwd: string) {
    this.child = new Deno.Command(path, {
      args,
      cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    running.add(this);
    void this.child.status.finally(() => running.delete(this));
    this.#writer = this.child.stdin.getWriter();
    this.#readers = [
      this.#collect(this.child.stdout, (text) => this.stdout += text).finally(() => {
        this.#stdoutEnded = true;
      }),
      this.#collect(this.child.stderr, (text) => this.stderr += text),
    ];
  }

  async #collect(stream: ReadableStream<Uint8Array>, add: (text: string) => void): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      add(text);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }

  async type(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /**
   * Waits until stdout from `from` on contains `text`; returns the offset just past it. Wakes on
   * every chunk of output, so the caller's clock is read right after the text arrives.
   */
  async waitFor(text: string | RegExp, from = 0, timeoutMs = WAIT_MS): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const rest = this.stdout.slice(from);
      const match = typeof text === "string"
        ? (rest.includes(text) ? { index: rest.indexOf(text), length: text.length } : undefined)
        : (() => {
          const m = text.exec(rest);
          return m ? { index: m.index, length: m[0].length } : undefined;
        })();
      if (match) return from + match.index + match.length;
      const left = deadline - Date.now();
      if (left <= 0 || this.#stdoutEnded) {
        throw new Error(
          `${this.name}: ${left <= 0 ? "timed out" : "output ended"} waiting for ${
            String(text)
          }; ` +
            `stdout so far:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
  }

  /** Waits (at most `timeoutMs`, then SIGKILL) for the program to exit; returns its code. */
  async exit(timeoutMs = 15_000): Promise<number> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    const status = await this.child.status;
    clearTimeout(timer);
    await this.#writer.close().catch(() => {});
    await Promise.all(this.#readers);
    return status.code;
  }

  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

async function loggedIn(
  port: number,
  dir: string,
  user: string,
  password: string,
): Promise<Program> {
  const client = new Program(user, CLIENT_BIN, ["127.0.0.1", String(port), "0"], dir);
  await client.waitFor("Username: \n");
  await client.type(user);
  await client.waitFor("Password: \n");
  await client.type(password);
  await client.waitFor("Welcome to TOOM!");
  await client.waitFor(PROMPT);
  return client;
}

/** Result of one timed `UPD`. */
export interface UpdRun {
  elapsedMs: number;
}

/**
 * A server and two logged-in clients (yoda sending, hans receiving), set up by `start`; `upd`
 * times one transfer of `fileName` (already copied into yoda's directory); `stop` logs both out,
 * stops the server with SIGINT and removes every temporary directory.
 */
export class ClientPair {
  private constructor(
    readonly dirs: string[],
    readonly server: Program,
    readonly yoda: Program,
    readonly hans: Program,
    readonly yodaDir: string,
    readonly hansDir: string,
  ) {}

  static async start(): Promise<ClientPair> {
    await ensureBuilt();
    const dirs: string[] = [];
    const programs: Program[] = [];
    try {
      const serverDir = await makeTempDir("toom_bench_server_");
      dirs.push(serverDir);
      await Deno.writeTextFile(`${serverDir}/credentials.txt`, "yoda jedi\nhans falcon\n");
      const server = new Program("chat-server", SERVER_BIN, ["0", "3"], serverDir);
      programs.push(server);
      const at = await server.waitFor(/TOOM server listening on port (\d+) \(/);
      const port = Number(/listening on port (\d+) \(/.exec(server.stdout.slice(0, at))![1]);
      const yodaDir = await makeTempDir("toom_bench_yoda_");
      dirs.push(yodaDir);
      const hansDir = await makeTempDir("toom_bench_hans_");
      dirs.push(hansDir);
      const yoda = await loggedIn(port, yodaDir, "yoda", "jedi");
      programs.push(yoda);
      const hans = await loggedIn(port, hansDir, "hans", "falcon");
      programs.push(hans);
      return new ClientPair(dirs, server, yoda, hans, yodaDir, hansDir);
    } catch (error) {
      for (const program of programs) program.kill("SIGKILL");
      for (const program of programs) await program.exit().catch(() => {});
      for (const dir of dirs) await removeTempDir(dir);
      throw error;
    }
  }

  /**
   * Times `UPD hans <fileName>`; checks the receiver's notice and the saved copy's SHA-256
   * against `sha256`, then deletes the copy so the next run saves under the same name.
   */
  async upd(fileName: string, sha256: string, hashFile: (path: string) => Promise<string>) {
    const yodaFrom = this.yoda.stdout.length;
    const hansFrom = this.hans.stdout.length;
    const started = performance.now();
    await this.yoda.type(`UPD hans ${fileName}`);
    await this.yoda.waitFor(`${fileName} has been uploaded\n`, yodaFrom);
    const elapsedMs = performance.now() - started;
    await this.hans.waitFor(`Received ${fileName} from yoda\n`, hansFrom);
    const saved = `${this.hansDir}/yoda_${fileName}`;
    if (await hashFile(saved) !== sha256) throw new Error(`UPD: ${saved} differs from the source`);
    await Deno.remove(saved);
    return { elapsedMs } satisfies UpdRun;
  }

  /** Logs both clients out (OUT), stops the server with SIGINT, removes the directories. */
  async stop(): Promise<void> {
    try {
      for (const [client, user] of [[this.yoda, "yoda"], [this.hans, "hans"]] as const) {
        const from = client.stdout.length;
        await client.type("OUT");
        await client.waitFor(`Bye, ${user}!`, from, 15_000);
        const code = await client.exit();
        if (code !== 0) throw new Error(`${user}'s chat-client exited with status ${code}`);
      }
    } finally {
      for (const client of [this.yoda, this.hans]) {
        client.kill("SIGKILL");
        await client.exit();
      }
      this.server.kill("SIGINT");
      await this.server.exit();
      for (const dir of this.dirs) await removeTempDir(dir);
    }
  }
}
