/**
 * The certificates the client has pinned, one per server, like SSH's known_hosts: the first time
 * it meets a server whose certificate no authority vouches for, it remembers the certificate's
 * fingerprint under `host:port`; later it refuses a different one. `FileKnownServers` keeps them in
 * `$XDG_CONFIG_HOME/toom/known_servers` (one `host:port FINGERPRINT` a line), `MemoryKnownServers`
 * for one run (and tests), and `SessionKnownServers` puts the two together so that a file that
 * cannot be read or written costs only the memory across runs, never the check within one.
 */
import { normalizeFingerprint } from "../shared/fingerprint.ts";

/** A pin: the fingerprint remembered for a server and where it is written. */
export interface Pin {
  fingerprint: string;
  /** The 1-based line of the store's file that holds it (0 for a pin kept in memory only). */
  line: number;
}

/** Where pinned certificates are kept. */
export interface KnownServers {
  /** Where the pins live, for messages: a file's path, or a description. */
  readonly where: string;
  /** Whether pins outlive this run (they are in a file that works). */
  readonly persistent: boolean;
  /** The pin for `server` (`host:port`, see `serverKey`), or undefined if it has none. */
  lookup(server: string): Promise<Pin | undefined>;
  /** Pins `fingerprint` for a server that has no pin yet. */
  remember(server: string, fingerprint: string): Promise<void>;
}

/** The name a server is pinned under: `host:port`, an IPv6 host in brackets, lower case. */
export function serverKey(hostname: string, port: number): string {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The first line of a new file, so that whoever opens it knows what it is. */
export const KNOWN_SERVERS_HEADER =
  "# TOOM servers whose certificate was pinned on first use: host:port SHA-256-fingerprint\n";

/**
 * Reads a known_servers file: `host:port FINGERPRINT` lines; blank lines, `#` comments and lines
 * that do not parse are skipped. The first pin of a server wins.
 */
export function parseKnownServers(text: string): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const [server, fingerprint, ...rest] = line.split(/\s+/);
    const normal = normalizeFingerprint(fingerprint ?? "");
    if (!server || !normal || rest.length > 0 || pins.has(server.toLowerCase())) return;
    pins.set(server.toLowerCase(), { fingerprint: normal, line: index + 1 });
  });
  return pins;
}

/** One line of a known_servers file, with its newline. */
export function formatKnownServer(server: string, fingerprint: string): string {
  return `${server} ${fingerprint}\n`;
}

/** Pins kept in memory, for one run or a test. */
export class MemoryKnownServers implements KnownServers {
  readonly where: string;
  readonly persistent = false;
  readonly pins = new Map<string, Pin>();

  constructor(where = "memory (for this session only)") {
    this.where = where;
  }

  lookup(server: string): Promise<Pin | undefined> {
    return Promise.resolve(this.pins.get(server.toLowerCase()));
  }

  remember(server: string, fingerprint: string): Promise<void> {
    this.pins.set(server.toLowerCase(), { fingerprint, line: 0 });
    return Promise.resolve();
  }
}

/**
 * The path of the known_servers file: `$XDG_CONFIG_HOME/toom/known_servers`, or
 * `$HOME/.config/toom/known_servers` when XDG_CONFIG_HOME is unset or not absolute; undefined when
 * neither variable can be read.
 */
export function knownServersPath(env: (name: string) => string | undefined): string | undefined {
  const read = (name: string) => {
    try {
      return env(name);
    } catch {
      return undefined; // No permission to read it: as if unset.
    }
  };
  const xdg = read("XDG_CONFIG_HOME");
  if (xdg && xdg.startsWith("/")) return `${xdg.replace(/\/+$/, "")}/toom/known_servers`;
  const home = read("HOME");
  if (home) return `${home.replace(/\/+$/, "")}/.config/toom/known_servers`;
  return undefined;
}

/**
 * Pins in a file: read at each lookup (so a line the user removed counts at once), appended to at
 * each new pin. Its directory is made with mode 0700 and the file with 0600. Errors (no
 * permission, a read-only disk) are thrown for the caller to report.
 */
export class FileKnownServers implements KnownServers {
  readonly where: string;
  readonly persistent = true;

  constructor(path: string) {
    this.where = path;
  }

  async #read(): Promise<string> {
    try {
      return await Deno.readTextFile(this.where);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return "";
      throw error;
    }
  }

  async lookup(server: string): Promise<Pin | undefined> {
    return parseKnownServers(await this.#read()).get(server.toLowerCase());
  }

  async remember(server: string, fingerprint: string): Promise<void> {
    const dir = this.where.slice(0, this.where.lastIndexOf("/"));
    if (dir !== "") await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const text = await this.#read();
    const prefix = text === "" ? KNOWN_SERVERS_HEADER : text.endsWith("\n") ? "" : "\n";
    await Deno.writeTextFile(this.where, prefix + formatKnownServer(server, fingerprint), {
      append: true,
      create: true,
      mode: 0o600,
    });
  }
}

/**
 * A file store with a memory in front: every pin is kept in memory too, so reconnecting within a
 * run checks against the certificate first seen even when the file cannot be read or written.
 * Such a failure is reported once through `warn`; the client goes on.
 */
export class SessionKnownServers implements KnownServers {
  readonly #memory = new MemoryKnownServers();
  readonly #file: KnownServers | undefined;
  readonly #warn: (message: string) => void;
  #warned = false;

  constructor(file: KnownServers | undefined, warn: (message: string) => void) {
    this.#file = file;
    this.#warn = warn;
  }

  /** Whether pins are kept across runs (the file exists and has not failed). */
  get persistent(): boolean {
    return this.#file !== undefined && !this.#warned;
  }

  get where(): string {
    return this.persistent ? this.#file!.where : this.#memory.where;
  }

  #failed(action: string, error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#warn(
      `Cannot ${action} ${this.#file!.where} (${(error as Error).message}): server ` +
        "certificates are remembered for this session only.",
    );
  }

  async lookup(server: string): Promise<Pin | undefined> {
    if (this.#file && !this.#warned) {
      try {
        const pin = await this.#file.lookup(server);
        if (pin) return pin;
      } catch (error) {
        this.#failed("read", error);
      }
    }
    return await this.#memory.lookup(server);
  }

  async remember(server: string, fingerprint: string): Promise<void> {
    await this.#memory.remember(server, fingerprint);
    if (!this.#file || this.#warned) return;
    try {
      await this.#file.remember(server, fingerprint);
    } catch (error) {
      this.#failed("write", error);
    }
  }
}
