/**
 * End-to-end, toom.db as a crash leaves it: the built chat-server is killed (SIGKILL) at seeded
 * random moments while raw protocol clients post to the board, leave offline messages, block and
 * unblock, and register accounts; after each restart on the same directory every acknowledged
 * change must be there exactly once, and nothing unacknowledged more than once (the workload and
 * its checks are in testing/crash_workload.ts). Then last-seen times across a clean stop and a
 * kill. Plain TCP (`--no-tls`) on 127.0.0.1: what is tested is the same over TLS. The start-up
 * refusals and `--data-dir` are in tests/store_start_test.ts.
 *
 * The crash test prints its seed; `TOOM_CRASH_SEED=<seed>` replays its choices (the interleaving
 * of the clients is the system's own).
 */
import assert from "node:assert/strict";
import { seededRandom } from "../lib/p2p/mod.ts";
import {
  BEFORE_EVERYTHING,
  checkBoard,
  checkDeliveries,
  checkRegistration,
  collect,
  Ledger,
  RECIPIENTS,
  registrar,
  sender,
  SENDERS,
} from "../testing/crash_workload.ts";
import { failsafe, programTests, startServerProgram } from "../testing/programs.ts";
import { CREDENTIALS, loggedIn, SERVER_ARGS } from "../testing/raw_client.ts";

const e2e = programTests("store crash end-to-end tests");
/** The crash test's server: keeps its board across restarts and lets anyone register. */
const CRASH_ARGS = [
  ...SERVER_ARGS,
  "--keep-board",
  "--allow-register",
  "--max-registrations-per-ip",
  "0",
];

/**
 * Kills a server `rounds` times while the clients work, restarting it on the same directory
 * each time, and checks after each restart that nothing acknowledged was lost or doubled.
 */
async function crashRounds(options: { sync: "full" | "normal"; rounds: number }): Promise<void> {
  const seed = Number(Deno.env.get("TOOM_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`seed ${seed} (TOOM_CRASH_SEED=${seed} repeats the choices)`);
  const random = seededRandom(seed);
  const ledger = new Ledger();
  await using server = await startServerProgram(CREDENTIALS, [
    ...CRASH_ARGS,
    "--sync",
    options.sync,
  ]);
  const { port } = server;
  for (let round = 1; round <= options.rounds; round++) {
    const clients = await Promise.all(SENDERS.map((user) => loggedIn(port, user)));
    // The kill, at a random moment of the round: anywhere between a request, its commit and its
    // reply, for some request or other.
    const start = ledger.replies;
    const killAtMs = 20 + Math.floor(random() * 680);
    try {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          server.program.kill("SIGKILL");
          resolve();
        }, killAtMs);
      });
      const workers = [
        ...SENDERS.map((user, index) =>
          sender(clients[index]!, user, {
            round,
            random: seededRandom(seed + round * 7919 + index * 104729),
            ledger,
          })
        ),
        ...[1, 2, 3].map((index) => registrar(port, { round, index, ledger })),
      ];
      const stopped = Promise.all(workers);
      await Promise.race([killed, stopped]);
      clearTimeout(timer);
      // Workers stop by themselves only on a surprise (the round fails below): kill anyway.
      server.program.kill("SIGKILL");
      await stopped;
    } finally {
      for (const client of clients) client.close();
    }
    console.log(
      `round ${round}: killed at ${killAtMs} ms, after ${ledger.replies - start} replies; ` +
        ledger.summary(),
    );
    assert.deepEqual(ledger.surprises, [], "replies that should not have come");
    await server.restart();

    const boardSize = checkBoard(
      ledger,
      await server.read("messagelog.txt"),
      await (async () => {
        using reader = await loggedIn(port, SENDERS[0]!);
        const reply = await reader.cmd(`RDM ${BEFORE_EVERYTHING}`);
        await reader.logOut();
        return reply;
      })(),
    );
    await Promise.all(RECIPIENTS.map((recipient) => collect(port, recipient, { round, ledger })));
    const deliveries = checkDeliveries(ledger);
    let registered = 0;
    for (const registration of ledger.registrations.filter((r) => r.round === round)) {
      const exists = await checkRegistration(port, registration);
      if (exists) registered++;
      // What a restart showed is final: it must last (or stay missing) through later kills.
      registration.outcome = exists ? "acked" : "refused";
    }
    console.log(
      `  after the restart: ${boardSize} posts on the board; ${deliveries.acked} acknowledged ` +
        `offline messages delivered once, ${deliveries.came} of ${deliveries.unanswered} ` +
        `unanswered ones; ${registered} of this round's accounts exist`,
    );
  }
  // Every account of every round survived every later kill, and no missing one came back.
  for (const registration of ledger.registrations) {
    assert.equal(await checkRegistration(port, registration), registration.outcome === "acked");
  }
}

Deno.test({
  name:
    "chat-server killed at random moments keeps every acknowledged message, post, block and account",
  ...e2e,
  fn: () => failsafe(60_000, () => crashRounds({ sync: "full", rounds: 4 })),
});

Deno.test({
  name: "with --sync normal too, a kill loses nothing the server acknowledged",
  ...e2e,
  fn: () => failsafe(60_000, () => crashRounds({ sync: "normal", rounds: 3 })),
});

Deno.test({
  name: "whoelsesince after a clean stop and after a kill still lists who was online before",
  ...e2e,
  fn: () =>
    failsafe(30_000, async () => {
      await using server = await startServerProgram(CREDENTIALS, SERVER_ARGS);
      const { port } = server;
      {
        // hans comes and goes; vader is still online when the server is stopped.
        using hans = await loggedIn(port, "hans");
        await hans.logOut();
        using vader = await loggedIn(port, "vader");
        server.program.kill("SIGTERM");
        assert.equal(await server.program.exit(), 0, server.program.stderr);
        await vader.link.closed;
        assert.ok(vader.events.some((event) => event.lines.includes("Server is shutting down")));
      }
      await server.restart();
      {
        using obiwan = await loggedIn(port, "obiwan");
        assert.deepEqual((await obiwan.cmd("whoelse")).lines, ["No other user is online."]);
        assert.deepEqual((await obiwan.cmd("whoelsesince 600")).lines, ["hans", "vader"]);
        // obiwan is online when the server is killed. His login is written down unacknowledged,
        // but changes are committed in order: once a later one is acknowledged, it is on the disk.
        const kept = await obiwan.cmd("message luke see you");
        assert.deepEqual(kept.lines, [
          "luke is offline; the message will be delivered when they log in.",
        ]);
        await server.crash();
        await obiwan.link.closed;
      }
      await server.restart();
      using yoda = await loggedIn(port, "yoda");
      assert.deepEqual((await yoda.cmd("whoelsesince 600")).lines, ["hans", "obiwan", "vader"]);
      await yoda.logOut();
    }),
});
