/**
 * Helper of bench/p2p.ts: `UPD` of a file between two real client processes. Starts ./chat-server
 * (port 0) and two ./chat-client processes (UDP port 0, stdin piped, so plain mode), each in its
 * own temporary directory, logged in as yoda and hans, and times `UPD hans <file>` from the line
 * being written to yoda's stdin until yoda prints `<file> has been uploaded`. Each transfer is
 * checked: hans prints `Received <file> from yoda` and `yoda_<file>` in hans's directory has the
 * source's SHA-256. Only talks to 127.0.0.1.
 */

import {
  loggedInClient,
  type Program,
  type RunningServer,
  startServerProgram,
} from "../testing/programs.ts";

// The same process driver as the end-to-end tests; its failsafe also serves the benchmark.
export { abandonPrograms } from "../testing/programs.ts";

/** Longest wait for any one expected line (a failsafe; a 64 MiB UPD takes about a second). */
const WAIT_MS = 60_000;

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
    readonly server: RunningServer,
    readonly yoda: Program & { dir: string },
    readonly hans: Program & { dir: string },
  ) {}

  /** Where yoda, the sender, runs (copy the file to send here). */
  get yodaDir(): string {
    return this.yoda.dir;
  }

  static async start(): Promise<ClientPair> {
    const server = await startServerProgram("yoda jedi\nhans falcon\n");
    try {
      const yoda = await loggedInClient(server, "yoda", "jedi");
      const hans = await loggedInClient(server, "hans", "falcon");
      return new ClientPair(server, yoda, hans);
    } catch (error) {
      await server.stop();
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
    await this.yoda.waitFor(`${fileName} has been uploaded\n`, yodaFrom, WAIT_MS);
    const elapsedMs = performance.now() - started;
    await this.hans.waitFor(`Received ${fileName} from yoda\n`, hansFrom, WAIT_MS);
    const saved = `${this.hans.dir}/yoda_${fileName}`;
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
      await this.server.stop();
    }
  }
}
