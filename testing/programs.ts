/**
 * End-to-end fixtures: the built programs (./chat-server, ./chat-client) run in temporary
 * directories and are driven through stdin/stdout as a user would. Programs and servers are
 * disposable (`await using server = await startServerProgram(...)`), so a failing test still
 * kills its processes and removes its directories. Servers speak TLS (their certificate is made
 * in their directory at the first start) unless given --no-tls; every client gets a configuration
 * directory of its own (XDG_CONFIG_HOME), so tests never touch the real ~/.config/toom.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const SERVER_BIN = `${ROOT}/chat-server`;
export const CLIENT_BIN = `${ROOT}/chat-client`;

/** Whether this run may spawn programs and touch files; e2e tests are ignored otherwise. */
export const CAN_RUN_PROGRAMS = ["run", "read", "write", "env"].every((name) =>
  Deno.permissions.querySync({ name: name as "run" }).state === "granted"
);

/**
 * Options for a file of tests that run the programs: ignored, with a one-line hint saying why,
 * when the run may not spawn programs or touch files.
 */
export function programTests(
  what: string,
): { ignore: boolean; sanitizeResources: boolean; sanitizeOps: boolean } {
  if (!CAN_RUN_PROGRAMS) {
    console.log(
      `(${what} ignored: they need --allow-run --allow-read --allow-write --allow-env; ` +
        "run `deno task test`)",
    );
  }
  return { ignore: !CAN_RUN_PROGRAMS, sanitizeResources: false, sanitizeOps: false };
}

/** Programs started here and still running, and temp dirs not yet removed (for failsafes). */
const running = new Set<Program>();
const tempDirs = new Set<string>();

/** For a failsafe about to give up: kills every program started here and removes the dirs. */
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

/**
 * Runs `work`, failing (and killing every program started here, so nothing is left behind) if it
 * takes longer than `ms`: a failsafe, never the way a test normally ends.
 */
export async function failsafe(ms: number, work: () => Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abandonPrograms();
      reject(new Error(`Failsafe: the test took longer than ${ms / 1000} s`));
    }, ms);
  });
  try {
    await Promise.race([work(), expired]);
  } finally {
    clearTimeout(timer);
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

let built: Promise<void> | undefined;

/** Builds the programs once per test run unless they exist already. */
export function ensureBuilt(): Promise<void> {
  built ??= (async () => {
    const exists = async (path: string) => await Deno.stat(path).then(() => true, () => false);
    if (await exists(SERVER_BIN) && await exists(CLIENT_BIN)) return;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["task", "build"],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(result.success, "deno task build failed");
  })();
  return built;
}

/**
 * A running program with its output collected as it arrives. Disposing it kills it (SIGKILL) if
 * it still runs and waits until it has exited and its pipes are drained. A chat-client started
 * without XDG_CONFIG_HOME in `env` gets a fresh one (`configDir`), removed when it has exited.
 */
export class Program implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #readers: Promise<void>[];
  #waiters: Array<() => void> = [];
  #stdoutEnded = false;
  /** The client's own XDG_CONFIG_HOME, made here (undefined for a server or a given one). */
  readonly configDir: string | undefined;

  constructor(
    path: string,
    args: string[],
    options: { cwd: string; env?: Record<string, string> },
  ) {
    if (path === CLIENT_BIN && options.env?.XDG_CONFIG_HOME === undefined) {
      this.configDir = Deno.makeTempDirSync({ prefix: "toom-config-" });
      tempDirs.add(this.configDir);
    }
    this.child = new Deno.Command(path, {
      args,
      cwd: options.cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: {
        NO_COLOR: "1",
        ...(this.configDir ? { XDG_CONFIG_HOME: this.configDir } : {}),
        ...options.env,
      },
    }).spawn();
    running.add(this);
    this.#writer = this.child.stdin.getWriter();
    this.#readers = [
      this.#collect(this.child.stdout, (text) => this.stdout += text).finally(() => {
        this.#stdoutEnded = true;
        this.#wake();
      }),
      this.#collect(this.child.stderr, (text) => this.stderr += text),
    ];
    this.#done = this.child.status.finally(async () => {
      running.delete(this);
      if (this.configDir) await removeTempDir(this.configDir);
    });
  }

  async #collect(stream: ReadableStream<Uint8Array>, add: (text: string) => void): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      add(text);
      this.#wake();
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Types a line. */
  async type(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin (end of input). */
  async endInput(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  /**
   * Waits until stdout (from `from` on) contains `text`, and returns the offset just past it,
   * so a caller can wait for the next occurrence. Fails after `timeoutMs` (a failsafe), or at
   * once if the program's output has ended without it.
   */
  async waitFor(text: string | RegExp, from = 0, timeoutMs = 15_000): Promise<number> {
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
          `${left <= 0 ? "Timed out" : "Output ended"} waiting for ${
            String(text)
          }; stdout so far:\n${this.stdout}\nstderr:\n${this.stderr}`,
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

  /** Waits for the program to exit and returns its status code. */
  async exit(timeoutMs = 15_000): Promise<number> {
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    const status = await this.#done;
    clearTimeout(timer);
    await this.endInput();
    await Promise.all(this.#readers);
    return status.code;
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Kills the program unless it has exited, and waits for it; idempotent. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.exit();
  }
}

/**
 * A server started in a fresh temporary directory. Disposing it stops it: `await using server =
 * await startServerProgram(...)`.
 */
export interface RunningServer extends AsyncDisposable {
  dir: string;
  /** Client directories made for this server; removed when it stops. */
  clientDirs: string[];
  port: number;
  program: Program;
  read(name: string): Promise<string>;
  /** Kills the server outright (SIGKILL, as a crash would) and waits until it is gone. */
  crash(): Promise<void>;
  /**
   * Starts the server again, as a new process in the same directory on the same port, and waits
   * until it listens; `program` is then the new process. Kills the old one first if it runs.
   */
  restart(): Promise<void>;
  /** Stops the server (SIGINT), waits for it and removes its and its clients' dirs; idempotent. */
  stop(): Promise<void>;
}

/** Starts ./chat-server on a free port in a temp dir holding `credentials`. */
export async function startServerProgram(
  credentials: string,
  args: string[] = ["3"],
): Promise<RunningServer> {
  await ensureBuilt();
  const dir = await makeTempDir("toom-e2e-");
  const clientDirs: string[] = [];
  let program: Program | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      if (program) {
        program.kill("SIGINT");
        await program.exit();
      }
      for (const path of [dir, ...clientDirs]) await removeTempDir(path);
    })();
  /** Starts the server on `port` and resolves with the port it listens on. */
  const spawn = async (port: number): Promise<number> => {
    const started = program = new Program(SERVER_BIN, [String(port), ...args], { cwd: dir });
    const at = await started.waitFor(/listening on port (\d+) /);
    return Number(/listening on port (\d+) /.exec(started.stdout.slice(0, at))![1]);
  };
  try {
    await Deno.writeTextFile(`${dir}/credentials.txt`, credentials);
    const port = await spawn(0);
    const crash = async () => {
      program!.kill("SIGKILL");
      await program!.exit();
    };
    const server: RunningServer = {
      dir,
      clientDirs,
      port,
      program: program!,
      read: (name) => Deno.readTextFile(`${dir}/${name}`),
      crash,
      async restart() {
        await crash();
        await spawn(port);
        server.program = program!;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
    return server;
  } catch (error) {
    program?.kill("SIGKILL");
    await stop();
    throw error;
  }
}

/** Options of a client program. */
export interface ClientProgramOptions {
  /** Variables added to (or replacing) the environment the client inherits. */
  env?: Record<string, string>;
  /** The port to connect to instead of the server's (a relay in front of it). */
  port?: number;
}

/** Starts ./chat-client against a server, in its own temp dir, on any free UDP port. */
export async function startClientProgram(
  server: RunningServer,
  extra: string[] = [],
  options: ClientProgramOptions = {},
): Promise<Program & { dir: string }> {
  const dir = await makeTempDir("toom-client-");
  server.clientDirs.push(dir);
  const port = options.port ?? server.port;
  const program = new Program(CLIENT_BIN, ["127.0.0.1", String(port), "0", ...extra], {
    cwd: dir,
    ...(options.env ? { env: options.env } : {}),
  });
  return Object.assign(program, { dir });
}

/** Starts a client and logs it in; returns it once the command prompt shows. */
export async function loggedInClient(
  server: RunningServer,
  user: string,
  password: string,
  extra: string[] = [],
  options: ClientProgramOptions = {},
): Promise<Program & { dir: string }> {
  const client = await startClientProgram(server, extra, options);
  try {
    await client.waitFor("Username: \n");
    await client.type(user);
    await client.waitFor("Password: \n");
    await client.type(password);
    await client.waitFor("Welcome to TOOM!");
    await client.waitFor(
      "Enter one of the following commands (MSG, DLT, EDT, RDM, ATU, OUT, UPD), or help:\n",
    );
    return client;
  } catch (error) {
    await client[Symbol.asyncDispose]();
    throw error;
  }
}
