/**
 * A stand-in cluster node for liveness tests: a process that takes a node lease and holds it
 * until it is killed (or its stdin closes, so a test that fails leaves nothing behind).
 * `startLeaseHolder()` runs it; the test kills it with SIGKILL as a machine would die.
 */
import { NodeLease } from "../lib/server/cluster/liveness.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A running lease holder: its node id and lock key, and the process to kill. */
export interface LeaseHolder extends AsyncDisposable {
  readonly id: string;
  readonly key: number;
  readonly process: Deno.ChildProcess;
}

/** Starts this file as a process holding a lease on `url` for node `id`; resolves once held. */
export async function startLeaseHolder(url: string, id: string): Promise<LeaseHolder> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      `--config=${ROOT}deno.json`,
      "--allow-net",
      "--allow-env",
      new URL(import.meta.url).pathname,
      url,
      id,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = process.stdin.getWriter();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let said = "";
  while (!said.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) break;
    said += value;
  }
  const match = /^held (\d+)\n/.exec(said);
  if (!match) {
    await stdin.close().catch(() => {});
    await process.status;
    throw new Error(`The lease holder for ${id} did not start: ${JSON.stringify(said)}`);
  }
  return {
    id,
    key: Number(match[1]),
    process,
    async [Symbol.asyncDispose]() {
      try {
        process.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await stdin.close().catch(() => {});
      await lines.cancel().catch(() => {});
      await process.status;
    },
  };
}

if (import.meta.main) {
  const [url, id] = Deno.args;
  if (!url || !id) throw new Error("Usage: cluster_node.ts URL NODE_ID");
  const lease = await NodeLease.acquire(url, { id, host: "127.0.0.1", port: 1 });
  console.log(`held ${lease.key}`);
  // Hold the lease until stdin closes; a test normally kills the process first.
  for await (const _ of Deno.stdin.readable) {
    // Nothing is read; this only waits.
  }
  await lease.release();
}
