/**
 * Throwaway PostgreSQL servers for tests: `initdb` into a fresh temporary directory, `pg_ctl start`
 * on a free port on 127.0.0.1 (trust authentication, fsync off), one database made. The binaries
 * are the installed PostgreSQL's (`pg_config --bindir`); as root they run as the `postgres` OS user,
 * since initdb refuses root. Servers are disposable (`await using pg = await startPostgres()`), and
 * a server a test file shares (`sharedPostgres()`) is stopped when the file's tests are done.
 */
import postgres from "postgres";

/** A running throwaway server. */
export interface PostgresServer extends AsyncDisposable {
  /** The URL of the database made at start (`postgres://postgres@127.0.0.1:PORT/toom`). */
  readonly url: string;
  readonly port: number;
  /** Makes a fresh, empty database on this server and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server at once (`pg_ctl stop -m immediate`) and removes its directory; idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the server at once and starts it again on the same port with the same data; `whileDown`
   * runs in between (the server is started again even if it fails).
   */
  restart(whileDown?: () => Promise<void>): Promise<void>;
}

const NEEDED = ["run", "read", "write", "env"] as const;

/** Whether this run may spawn programs and touch files and the environment, as the fixture does. */
function permitted(): boolean {
  return NEEDED.every((name) => Deno.permissions.querySync({ name }).state === "granted");
}

let bindir: string | null | undefined;

/** Where the PostgreSQL server programs are (`pg_config --bindir`), or null if not installed. */
function binDir(): string | null {
  if (bindir !== undefined) return bindir;
  bindir = null;
  try {
    const out = new Deno.Command("pg_config", { args: ["--bindir"], stderr: "null" }).outputSync();
    const dir = new TextDecoder().decode(out.stdout).trim();
    if (out.success && Deno.statSync(`${dir}/initdb`).isFile) bindir = dir;
  } catch {
    // No pg_config, or it names no server programs (only the client is installed).
  }
  return bindir;
}

/** Whether throwaway PostgreSQL servers can be started in this run. */
export function postgresAvailable(): boolean {
  return permitted() && binDir() !== null;
}

/**
 * Options for tests that need PostgreSQL: ignored, with a one-line hint saying why, when the run
 * may not spawn programs or touch files, or PostgreSQL is not installed.
 */
export function postgresTests(what: string): { ignore: boolean } {
  if (!permitted()) {
    console.log(
      `(${what} ignored: they need --allow-run --allow-read --allow-write --allow-env; ` +
        "run `deno task test`)",
    );
  } else if (binDir() === null) {
    console.log(`(${what} ignored: PostgreSQL is not installed; apt-get install postgresql)`);
  }
  return { ignore: !postgresAvailable() };
}

/**
 * A `Deno.test` for tests that need PostgreSQL, ignored as {@linkcode postgresTests} says (the
 * hint printed once, when this is called).
 */
export function postgresTest(what: string): (name: string, fn: () => Promise<void>) => void {
  const { ignore } = postgresTests(what);
  return (name, fn) => Deno.test({ name, ignore, fn });
}

/** Servers started here and not yet stopped, stopped on the way out if a test left one. */
const running = new Map<string, () => void>();
let unloadHooked = false;

let root: boolean | undefined;

/** Whether this process runs as root (`id -u`: Deno.uid() would need --allow-sys). */
function isRoot(): boolean {
  root ??= new TextDecoder().decode(new Deno.Command("id", { args: ["-u"] }).outputSync().stdout)
    .trim() === "0";
  return root;
}

/** The `postgres` OS user's ids, when running as root (initdb refuses root). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const line = Deno.readTextFileSync("/etc/passwd").split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  if (!line) throw new Error("Running as root, but there is no postgres user to run PostgreSQL");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs a PostgreSQL program (as the postgres user when root); throws with its output if it fails. */
async function run(program: string, args: string[], options: { timeoutMs: number; cwd: string }) {
  const path = `${binDir()}/${program}`;
  const [command, all] = isRoot()
    ? ["runuser", ["-u", "postgres", "--", path, ...args]]
    : [path, args];
  const result = await new Deno.Command(command, {
    args: all,
    cwd: options.cwd,
    stdin: "null",
    signal: AbortSignal.timeout(options.timeoutMs),
  }).output();
  if (!result.success) {
    const said = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-5).join("\n");
    throw new Error(`${program} ${args.join(" ")} failed (${result.code}): ${said}`);
  }
}

/** A port nobody listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts a throwaway PostgreSQL server with an empty database `toom`. */
export async function startPostgres(): Promise<PostgresServer> {
  if (binDir() === null) throw new Error("PostgreSQL is not installed (no pg_config --bindir)");
  const user = serverUser();
  const dir = await Deno.makeTempDir({ prefix: "toom-pg-" });
  const data = `${dir}/data`;
  let port = 0;
  let up = false;
  const pgCtl = (args: string[]) =>
    run("pg_ctl", ["-D", data, ...args], { timeoutMs: 30_000, cwd: dir });
  const launch = () =>
    pgCtl([
      "-l",
      `${dir}/server.log`,
      "-w",
      "-t",
      "20",
      "-o",
      // Without fsync a commit is still in the operating system's hands before it is
      // acknowledged, so it survives an immediate stop (not a machine crash, which tests skip).
      // synchronous_commit stays on: with it off, a restart would lose acknowledged commits.
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
      "start",
    ]).then(() => {
      up = true;
    });
  const halt = async () => {
    if (!up) return;
    up = false;
    await pgCtl(["-m", "immediate", "-w", "stop"]);
  };
  const haltNow = () => {
    const path = `${binDir()}/pg_ctl`;
    const args = ["-D", data, "-m", "immediate", "-w", "stop"];
    new Deno.Command(user ? "runuser" : path, {
      args: user ? ["-u", "postgres", "--", path, ...args] : args,
      stdout: "null",
      stderr: "null",
    }).outputSync();
    Deno.removeSync(dir, { recursive: true });
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      running.delete(dir);
      try {
        await halt();
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    })();
  running.set(dir, haltNow);
  if (!unloadHooked) {
    unloadHooked = true;
    globalThis.addEventListener("unload", () => {
      for (const halt of running.values()) {
        try {
          halt();
        } catch {
          // Best effort on the way out.
        }
      }
    });
  }
  try {
    if (user) await Deno.chown(dir, user.uid, user.gid);
    await run("initdb", [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth=trust",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ], { timeoutMs: 60_000, cwd: dir });
    // Another process may take the free port before the server binds it: try another.
    for (let attempt = 1;; attempt++) {
      port = freePort();
      try {
        await launch();
        break;
      } catch (error) {
        if (attempt === 3) throw error;
      }
    }
    const base = `postgres://postgres@127.0.0.1:${port}`;
    await admin(base, `CREATE DATABASE toom`);
    let made = 0;
    return {
      url: `${base}/toom`,
      port,
      async createDatabase() {
        const name = `toom_${++made}`;
        await admin(base, `CREATE DATABASE ${name}`);
        return `${base}/${name}`;
      },
      stop,
      async restart(whileDown) {
        await halt();
        try {
          await whileDown?.();
        } finally {
          await launch();
        }
      },
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Runs one statement on the server's `postgres` database. */
async function admin(base: string, statement: string): Promise<void> {
  const sql = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end();
  }
}

let shared: Promise<PostgresServer> | undefined;

/**
 * One server for the tests of a file, started by the first that asks and stopped when the file's
 * tests are done (each test file runs in an isolate of its own). Tests that stop or restart a
 * server start their own.
 */
export function sharedPostgres(): Promise<PostgresServer> {
  shared ??= startPostgres();
  return shared;
}
