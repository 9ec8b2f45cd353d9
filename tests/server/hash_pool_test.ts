/**
 * Bounded work for password hashing (lib/server/hash_pool.ts): the pool's concurrency and queue,
 * busy refusals through the server (which do not count as failed attempts), and a burst of wrong
 * passwords at the real scrypt cost over TCP, whose memory and whose effect on a logged-in
 * bystander stay small.
 */
import assert from "node:assert/strict";
import {
  DEFAULT_HASH_COST,
  deriveHere,
  hashPassword,
  verifyPassword,
} from "../../lib/server/credentials.ts";
import { DiskFiles, MemoryFiles } from "../../lib/server/files.ts";
import { HashPool, ServerBusyError } from "../../lib/server/hash_pool.ts";
import { ChatServer } from "../../lib/server/mod.ts";
import { serveTcp } from "../../lib/server/tcp_server.ts";
import { systemClock } from "../../lib/shared/clock.ts";
import { tcpConnection } from "../../lib/shared/transport.ts";
import {
  memoryAddress,
  startServer,
  TestClient,
  testConfig,
} from "../../testing/server_fixture.ts";
import { tempDir } from "../../testing/temp_dir.ts";

/** Work that finishes when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => open = resolve);
  return { open, opened };
}

Deno.test("HashPool runs at most `concurrency` at once and the rest in order", async () => {
  const pool = new HashPool({ concurrency: 2, queue: 4 });
  const gates = Array.from({ length: 5 }, gate);
  const started: number[] = [];
  const done = gates.map((g, i) =>
    pool.run(async () => {
      started.push(i);
      await g.opened;
      return i;
    })
  );
  await Promise.resolve();
  assert.deepEqual(started, [0, 1]);
  assert.equal(pool.running, 2);
  assert.equal(pool.waiting, 3);
  gates[1]!.open();
  assert.equal(await done[1], 1);
  assert.deepEqual(started, [0, 1, 2]);
  for (const g of gates) g.open();
  assert.deepEqual(await Promise.all(done), [0, 1, 2, 3, 4]);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.equal(pool.running, 0);
});

Deno.test("HashPool refuses at once, as busy, when its queue is full", async () => {
  const pool = new HashPool({ concurrency: 1, queue: 1 });
  const g = gate();
  const first = pool.run(() => g.opened);
  const second = pool.run(() => Promise.resolve("second"));
  await assert.rejects(pool.run(() => Promise.resolve("third")), ServerBusyError);
  assert.equal(new ServerBusyError().message, "The server is busy; try again in a moment.");
  g.open();
  await first;
  assert.equal(await second, "second");
  assert.equal(await pool.run(() => Promise.resolve("later")), "later");
});

Deno.test("HashPool frees the turn of work that failed", async () => {
  const pool = new HashPool({ concurrency: 1, queue: 0 });
  await assert.rejects(pool.run(() => Promise.reject(new Error("scrypt failed"))), /scrypt failed/);
  assert.equal(await pool.run(() => Promise.resolve(7)), 7);
});

Deno.test("HashPool derives scrypt keys on a worker thread, as node:crypto does", async () => {
  const pool = new HashPool({ concurrency: 2 });
  try {
    const cost = { N: 1024, r: 8, p: 1 };
    const salt = new TextEncoder().encode("0123456789abcdef");
    const [a, b] = await Promise.all([
      pool.run((derive) => derive("jedi", salt, cost, 32)),
      pool.run((derive) => derive("jedi", salt, cost, 32)),
    ]);
    assert.deepEqual([...a], [...await deriveHere("jedi", salt, cost, 32)]);
    assert.deepEqual([...b], [...a]);
    assert.equal(pool.threads, 2);
    const hash = await pool.run((derive) => hashPassword("pw", cost, derive));
    assert.equal(await pool.run((derive) => verifyPassword("pw", hash, derive)), true);
    assert.equal(await pool.run((derive) => verifyPassword("no", hash, derive)), false);
    assert.equal(pool.threads, 2, "workers are reused");
  } finally {
    pool.close();
  }
  assert.equal(pool.threads, 0);
  await assert.rejects(pool.run(() => Promise.resolve()), ServerBusyError);
});

Deno.test("HashPool starts no thread for work that derives nothing", async () => {
  const pool = new HashPool();
  assert.equal(await pool.run(() => Promise.resolve(1)), 1);
  assert.equal(pool.threads, 0);
  pool.close();
});

Deno.test("a full hash pool refuses logins as busy, and busy attempts do not count", async () => {
  const files = new MemoryFiles();
  files.contents.set("credentials.txt", `sith ${await hashPassword("darkside")}\n`);
  await using test = await startServer({
    files,
    maxFailures: 5,
    hashConcurrency: 1,
    hashQueue: 2,
    hashCost: DEFAULT_HASH_COST,
  });
  const clients = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const client = test.connect(memoryAddress(`10.0.1.${i}:4000`));
    await client.hello();
    await client.link.request({ t: "user", name: "sith" });
    return client;
  }));
  // Each check takes tens of milliseconds: all ten arrive while the first is running.
  const replies = await Promise.all(
    clients.map((client) => client.link.request({ t: "pass", password: "wrong", udpPort: 1 })),
  );
  const busy = replies.filter((reply) => reply.code === "busy");
  assert.equal(busy.length, 7, JSON.stringify(replies.map((reply) => reply.code)));
  assert.deepEqual(busy[0]!.lines, ["The server is busy; try again in a moment."]);
  assert.equal(replies.filter((reply) => reply.code === "bad-password").length, 3);
  // Three failures counted, not ten: two more lock the account.
  const last = clients[9]!;
  assert.equal(
    (await last.link.request({ t: "pass", password: "x", udpPort: 1 })).code,
    "bad-password",
  );
  assert.equal((await last.link.request({ t: "pass", password: "x", udpPort: 1 })).code, "locked");
});

const CAN_USE_DISK = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";
if (!CAN_USE_DISK) {
  console.log("(hash burst test ignored: it needs --allow-read --allow-write for its files)");
}

Deno.test({
  name: "a burst of 128 wrong scrypt passwords leaves memory and a bystander's commands alone",
  ignore: !CAN_USE_DISK,
  async fn() {
    await using dir = await tempDir("toom_hash_burst_");
    const credentialsPath = `${dir.path}/credentials.txt`;
    await Deno.writeTextFile(
      credentialsPath,
      `yoda jedi\nsith ${await hashPassword("darkside", DEFAULT_HASH_COST)}\n`,
    );
    // The real clock and files on disk: file writes share the runtime's threads with scrypt.
    const server = new ChatServer(testConfig({
      files: new DiskFiles(),
      credentialsPath,
      userLogPath: `${dir.path}/userlog.txt`,
      messageLogPath: `${dir.path}/messagelog.txt`,
      clock: systemClock,
      hashCost: DEFAULT_HASH_COST,
      maxFailures: 5,
      // One address plays every attacker: only the hash pool is under test here.
      maxPendingPerIp: 0,
      maxFailuresPerIp: 0,
    }));
    const controller = new AbortController();
    const listening = await serveTcp(server, {
      hostname: "127.0.0.1",
      port: 0,
      signal: controller.signal,
    });
    const clients: TestClient[] = [];
    const connect = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listening.port });
      const client = new TestClient(tcpConnection(conn));
      clients.push(client);
      return client;
    };
    try {
      const yoda = await connect();
      assert.equal((await yoda.login("yoda", "jedi")).ok, true);
      const attackers = await Promise.all(Array.from({ length: 128 }, connect));
      await Promise.all(attackers.map(async (attacker) => {
        await attacker.hello();
        await attacker.link.request({ t: "user", name: "sith" });
      }));
      const rssBefore = Deno.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sampler = setInterval(() => rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss), 5);
      const started = performance.now();
      let finished = Infinity;
      const burst = Promise.all(
        attackers.map((attacker) =>
          attacker.link.request({ t: "pass", password: "wrong", udpPort: 1 })
        ),
      ).finally(() => finished = performance.now());
      // The bystander posts while the burst is being checked.
      await new Promise((resolve) => setTimeout(resolve, 10));
      const latencies: number[] = [];
      for (let i = 0; i < 3; i++) {
        const sent = performance.now();
        assert.equal((await yoda.cmd(`MSG during the burst ${i}`)).ok, true);
        latencies.push(performance.now() - sent);
      }
      const answered = performance.now();
      const replies = await burst;
      clearInterval(sampler);
      const growthMb = (rssPeak - rssBefore) / 2 ** 20;
      const codes = replies.map((reply) => reply.code);
      console.log(
        `burst: ${Math.round(finished - started)} ms, RSS +${growthMb.toFixed(1)} MiB, ` +
          `bystander ${latencies.map((ms) => ms.toFixed(1)).join("/")} ms, ` +
          `${codes.filter((code) => code === "busy").length} busy`,
      );
      assert.ok(growthMb < 64, `RSS grew ${growthMb.toFixed(1)} MiB`);
      assert.ok(Math.max(...latencies) < 500, `bystander waited ${latencies} ms`);
      assert.ok(answered < finished || finished - started < 200, "answered before the burst ended");
      assert.ok(codes.includes("busy"), "the queue overflowed into busy refusals");
      assert.ok(
        codes.every((code) => ["busy", "bad-password", "locked", "blocked"].includes(code!)),
      );
    } finally {
      for (const client of clients) client.close();
      controller.abort();
      await listening.finished;
    }
  },
});
