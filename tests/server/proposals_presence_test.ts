/**
 * Login, logout, node-lost, lockout and handed-mail proposals (lib/server/cluster/presence.ts) and
 * the cluster's online list (online_list.ts). First decide() in memory: the duplicate-login rule
 * both ways, stale logouts, a lost node, failures counted as LoginGuard counts them, messages put
 * back first in line, userlog.txt rendered as UserLog writes it. Then two nodes on one PostgreSQL
 * database racing logins of one user.
 */
import assert from "node:assert/strict";

import { OnlineList, renderUserLog } from "../../lib/server/cluster/online_list.ts";

import type { PresenceProposal } from "../../lib/server/cluster/presence.ts";
import { decide, type Outcome, type Proposal } from "../../lib/server/cluster/proposals.ts";

import { MemoryFiles } from "../../lib/server/files.ts";
import { LoginGuard } from "../../lib/server/lockout.ts";
import { type Change, memoryStorage } from "../../lib/server/store/journal.ts";

import { UserLog } from "../../lib/server/user_log.ts";
import { FakeClock } from "../../lib/shared/clock.ts";

import { postgresTests } from "../../testing/postgres.ts";
import { type SequencedNode, sequencedNodes } from "../../testing/sequencer_fixture.ts";
import { type TestStore, testStore } from "../../testing/store_fixture.ts";

/** 2024-01-02 03:04:05 UTC, a whole second. */
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

async function memoryNode(): Promise<TestStore> {
  const node = testStore(memoryStorage(), { clock: new FakeClock(T0) });
  await node.store.start();
  return node;
}

function decided<P extends Proposal>(node: TestStore, proposal: P): Outcome<P["t"]> {
  return decide(node.store, proposal).outcome;
}

/** A login proposal of `user` on `node` as session `session`. */
function login(
  user: string,
  node: string,
  session: string,
  options: { at?: number; duplicate?: "deny" | "replace" } = {},
): Extract<PresenceProposal, { t: "login" }> {
  return {
    t: "login",
    user,
    node,
    session,
    ip: `10.0.0.${node === "a" ? 1 : 2}`,
    udpPort: 6000 + session.length,
    at: options.at ?? T0,
    duplicate: options.duplicate ?? "deny",
  };
}

/** Who the store lists as online: user@node/session, in login order. */
function onlineOf(node: TestStore): string[] {
  return node.store.online.entries.map(({ user, node, session }) => `${user}@${node}/${session}`);
}

Deno.test("a login proposal of an online user is refused with deny and replaces with replace", async () => {
  await using node = await memoryNode();
  const first = decided(node, login("yoda", "a", "s1"));
  assert.deepEqual(first, {
    ok: true,
    messages: [],
    replaced: null,
    presence: [{ user: "yoda", what: "logged in", to: [] }],
  });
  assert.equal(decided(node, login("hans", "b", "s2")).ok, true);
  const denied = decide(node.store, login("yoda", "b", "s3", { at: T0 + 1_000 }));
  assert.deepEqual(denied.outcome, { ok: false, reason: "yoda is already logged in" });
  assert.deepEqual(denied.changes, []);
  assert.deepEqual(onlineOf(node), ["yoda@a/s1", "hans@b/s2"]);
  const replaced = decide(
    node.store,
    login("yoda", "b", "s3", { duplicate: "replace", at: T0 + 2_000 }),
  );
  assert.deepEqual(replaced.outcome, {
    ok: true,
    messages: [],
    replaced: { node: "a", session: "s1" },
    presence: [
      { user: "yoda", what: "logged out", to: ["hans"] },
      { user: "yoda", what: "logged in", to: ["hans"] },
    ],
  });
  assert.deepEqual(onlineOf(node), ["hans@b/s2", "yoda@b/s3"]);
  assert.equal(node.store.lastSeen.times.get("yoda"), T0 + 2_000, "the replaced session left");
  assert.deepEqual(
    replaced.changes.filter((change) => ["online", "offline", "seen"].includes(change.t)),
    [
      { t: "offline", user: "yoda" },
      { t: "seen", user: "yoda", time: T0 + 2_000 },
      { t: "online", user: "yoda", time: T0 + 2_000 },
    ],
  );
  // Blocked users see no presence of whoever blocked them.
  decide(node.store, { t: "block", by: "leia", other: "hans" });
  const leia = decided(node, login("leia", "a", "s4"));
  assert.deepEqual(leia.ok && leia.presence, [{ user: "leia", what: "logged in", to: ["yoda"] }]);
});

Deno.test("a logout proposal of a session that is not the current one changes nothing", async () => {
  await using node = await memoryNode();
  decided(node, login("yoda", "a", "s1"));
  decided(node, login("hans", "a", "s2"));
  decided(node, login("yoda", "b", "s3", { duplicate: "replace" }));
  const stale = decide(node.store, {
    t: "logout",
    user: "yoda",
    session: "s1",
    at: T0 + 5_000,
    reason: "lost",
  });
  assert.deepEqual([stale.outcome, stale.changes], [{ ok: true, left: false, presence: [] }, []]);
  assert.deepEqual(onlineOf(node), ["hans@a/s2", "yoda@b/s3"]);
  assert.equal(node.store.lastSeen.times.get("yoda"), T0);
  const current = decided(node, {
    t: "logout",
    user: "yoda",
    session: "s3",
    at: T0 + 6_000,
    reason: "out",
  });
  assert.deepEqual(current, {
    ok: true,
    left: true,
    presence: [{ user: "yoda", what: "logged out", to: ["hans"] }],
  });
  assert.deepEqual(onlineOf(node), ["hans@a/s2"]);
  assert.equal(node.store.lastSeen.times.get("yoda"), T0 + 6_000);
  const again = decide(node.store, {
    t: "logout",
    user: "yoda",
    session: "s3",
    at: T0,
    reason: "out",
  });
  assert.deepEqual(again.changes, [], "a second logout of the same session is a no-op");
});

Deno.test("a node-lost proposal logs out only that node's users, with notices for the rest", async () => {
  await using node = await memoryNode();
  for (const [user, at] of [["yoda", "a"], ["hans", "b"], ["leia", "a"], ["luke", "b"]]) {
    decided(node, login(user!, at!, `${user}1`));
  }
  const lost = decided(node, { t: "node-lost", node: "a", at: T0 + 9_000 });
  assert.deepEqual(lost, {
    ok: true,
    users: ["yoda", "leia"],
    presence: [
      { user: "yoda", what: "logged out", to: ["hans", "luke"] },
      { user: "leia", what: "logged out", to: ["hans", "luke"] },
    ],
  });
  assert.deepEqual(onlineOf(node), ["hans@b/hans1", "luke@b/luke1"]);
  for (const user of ["yoda", "leia"]) {
    assert.equal(node.store.lastSeen.times.get(user), T0 + 9_000);
  }
  assert.equal(node.store.lastSeen.times.has("hans"), false);
  const none = decide(node.store, { t: "node-lost", node: "a", at: T0 + 10_000 });
  assert.deepEqual([none.outcome, none.changes], [{ ok: true, users: [], presence: [] }, []]);
});

Deno.test("fail-login proposals from alternating nodes lock a user as LoginGuard would", async () => {
  await using a = await memoryNode();
  await using b = await memoryNode();
  const written: Change[] = [];
  const clock = new FakeClock(T0);
  const guard = new LoginGuard(3, 10_000, clock, {
    journal: {
      record: (change) => Promise.resolve(void written.push(change)),
      note: () => {},
      close: () => Promise.resolve(),
    },
  });
  const results = [];
  const changes: Change[] = [];
  // Failures proposed on node a, then b, then a...: each applies the whole log, so the count adds.
  const script: Array<[Proposal, "fail" | "ok"]> = [];
  for (const at of [0, 1_000, 2_000, 13_000, 14_000]) {
    script.push([{ t: "fail-login", user: "yoda", at: T0 + at }, "fail"]);
  }
  script.push([{ t: "login-ok", user: "yoda", at: T0 + 15_000 }, "ok"]);
  script.push([{ t: "fail-login", user: "yoda", at: T0 + 16_000 }, "fail"]);
  for (const [proposal, kind] of script) {
    const byA = decide(a.store, proposal);
    const byB = decide(b.store, proposal);
    assert.deepEqual([byA.outcome, byA.changes], [byB.outcome, byB.changes]);
    changes.push(...byA.changes as Change[]);
    clock.advance((proposal as { at: number }).at - clock.now());
    // The login flow asks whether the user is locked before it checks a password.
    assert.equal(guard.isLocked("yoda"), false);
    if (kind === "fail") {
      const expected = await guard.recordFailure("yoda");
      assert.deepEqual(byA.outcome, { ok: true, result: expected });
      results.push(expected);
    } else {
      await guard.recordSuccess("yoda");
    }
  }
  assert.deepEqual(results, [
    "try-again",
    "try-again",
    "locked",
    "try-again",
    "try-again",
    "try-again",
  ]);
  assert.deepEqual(changes, written, "the same lockout records LoginGuard writes down");
  for (const node of [a, b]) {
    assert.deepEqual(node.store.guard.recordOf("yoda"), { user: "yoda", failures: 1, until: 0 });
  }
});

Deno.test("login-ok and fail-login decided while a lockout holds are refused, changing nothing", async () => {
  await using node = await memoryNode();
  // A node checked the password before it had applied the lockout another node decided.
  for (let i = 0; i < 3; i++) decide(node.store, { t: "fail-login", user: "hans", at: T0 });
  const record = node.store.guard.recordOf("hans");
  const during = decide(node.store, { t: "login-ok", user: "hans", at: T0 + 9_999 });
  assert.deepEqual([during.outcome, during.changes], [
    { ok: true, changed: false, locked: true },
    [],
  ]);
  const failed = decide(node.store, { t: "fail-login", user: "hans", at: T0 + 9_999 });
  assert.deepEqual([failed.outcome, failed.changes], [{ ok: true, result: "blocked" }, []]);
  assert.deepEqual(node.store.guard.recordOf("hans"), record);
  const after = decide(node.store, { t: "login-ok", user: "hans", at: T0 + 10_000 });
  assert.deepEqual(after.outcome, { ok: true, changed: false, locked: false });
});

Deno.test("fail-login proposals lock for the store's block duration, counted on every node", async () => {
  await using a = await memoryNode();
  await using b = await memoryNode();
  const fail = (at: number): Proposal => ({ t: "fail-login", user: "hans", at });
  for (const [i, node] of [a, b, a].entries()) {
    const outcome = decide(node.store, fail(T0 + i));
    // Only the proposer's node decided it here; the other applies the same log entry.
    decide((node === a ? b : a).store, fail(T0 + i));
    assert.deepEqual(outcome.outcome, { ok: true, result: i < 2 ? "try-again" : "locked" });
  }
  for (const node of [a, b]) {
    assert.equal(node.store.guard.isLocked("hans"), true);
    assert.deepEqual(node.store.guard.recordOf("hans"), {
      user: "hans",
      failures: 0,
      until: T0 + 2 + 10_000,
    });
  }
});

Deno.test("a login is handed the offline messages once; put back, they are first in line again", async () => {
  await using node = await memoryNode();
  const mail = (from: string, line: string) =>
    decided(node, { t: "mail", to: "leia", from, line, ref: line, time: T0 });
  for (const line of ["m1", "m2", "m3"]) mail("hans", line);
  const first = decided(node, login("leia", "a", "s1"));
  assert.deepEqual(first.ok && first.messages.map((m) => [m.id, m.line]), [[1, "m1"], [2, "m2"], [
    3,
    "m3",
  ]]);
  const racing = decided(node, login("leia", "b", "s2", { duplicate: "replace" }));
  assert.deepEqual(racing.ok && racing.messages, [], "handed out once");
  assert.equal(node.store.mailbox.count("leia"), 0);
  mail("yoda", "m4");
  const back = decide(node.store, { t: "put-back-mail", user: "leia", ids: [2, 1] });
  assert.deepEqual(back.outcome, { ok: true, returned: 2 });
  assert.deepEqual(back.changes, [{ t: "settle-mail", user: "leia", ids: [1, 2], back: true }]);
  assert.deepEqual(node.store.mailbox.ready("leia").map((m) => m.line), ["m1", "m2", "m4"]);
  assert.deepEqual(node.store.online.handed("leia").map((m) => m.line), ["m3"]);
  const delivered = decide(node.store, { t: "mail-delivered", user: "leia", ids: [3, 1] });
  assert.deepEqual(delivered.outcome, { ok: true, delivered: 1 });
  assert.deepEqual(delivered.changes, [
    { t: "settle-mail", user: "leia", ids: [3], back: false },
    { t: "delivered", ids: [3] },
  ]);
  assert.deepEqual(decided(node, { t: "put-back-mail", user: "leia", ids: [3] }), {
    ok: true,
    returned: 0,
  });
  // A lost node's logins give back what they were handed.
  const third = decided(node, login("leia", "c", "s3", { duplicate: "replace" }));
  assert.deepEqual(third.ok && third.messages.map((m) => m.line), ["m1", "m2", "m4"]);
  assert.equal(node.store.mailbox.count("leia"), 0);
  mail("hans", "m5");
  decided(node, { t: "node-lost", node: "c", at: T0 });
  assert.deepEqual(node.store.mailbox.ready("leia").map((m) => m.line), ["m1", "m2", "m4", "m5"]);
  assert.deepEqual(node.store.online.handed("leia"), []);
});

Deno.test("clear-board empties the board on the node that decides it", async () => {
  await using node = await memoryNode();
  decided(node, { t: "post", author: "yoda", text: "a", time: T0 });
  assert.deepEqual(decide(node.store, { t: "clear-board" }).changes, [{ t: "clear-board" }]);
  assert.equal(node.store.board.size, 0);
});

Deno.test("renderUserLog() renders the online list exactly as UserLog writes userlog.txt", async () => {
  const files = new MemoryFiles();
  const userLog = new UserLog(files, "userlog.txt");
  const list = new OnlineList();
  const users = [
    { user: "yoda", ip: "127.0.0.1", udpPort: 6001, loginTime: T0 + 999 },
    { user: "hans", ip: "10.1.2.3", udpPort: 6002, loginTime: T0 + 60_000 },
    { user: "leia", ip: "::1", udpPort: 6003, loginTime: T0 + 3_600_000 },
  ];
  for (const { user, ip, udpPort, loginTime } of users) {
    await userLog.add({ username: user, ip, udpPort, loginTime });
    list.arrive({ user, node: "a", session: user, ip, udpPort, loginTime });
  }
  assert.equal(renderUserLog(list), files.contents.get("userlog.txt"));
  assert.match(
    renderUserLog(list),
    /^1; .+; yoda; 127\.0\.0\.1; 6001\n2; .+; hans; 10\.1\.2\.3; 6002\n3; /,
  );
  await userLog.remove("yoda");
  list.depart("yoda", "yoda");
  assert.equal(renderUserLog(list), files.contents.get("userlog.txt"));
  assert.match(renderUserLog(list), /^1; .+; hans; .+\n2; .+; leia; ::1; 6003\n$/);
  list.depart("hans", "not-hans");
  assert.equal(list.size, 2, "a departure names the current session");
});

// ---- Two nodes on one PostgreSQL database ----

const PG = postgresTests("Presence proposal tests");

/** Two nodes, `a` and `b`, on a fresh database (testing/sequencer_fixture.ts). */
async function twoNodes() {
  const nodes = await sequencedNodes();
  try {
    const a = await nodes.node("a", { clock: new FakeClock(T0) });
    const b = await nodes.node("b", { clock: new FakeClock(T0) });
    return { ...nodes, a, b, caughtUp: () => nodes.caughtUp(a, b) };
  } catch (error) {
    await nodes[Symbol.asyncDispose]();
    throw error;
  }
}

/** Both nodes' online lists and rendered userlog.txt, which must be the same. */
function sameOnline(db: { a: SequencedNode; b: SequencedNode }): string[] {
  assert.deepEqual(db.a.store.online.entries, db.b.store.online.entries);
  assert.equal(renderUserLog(db.a.store.online), renderUserLog(db.b.store.online));
  return onlineOf(db.a);
}

Deno.test({
  name: "two logins of one user racing on two nodes: deny admits one, replace lets the later win",
  ignore: PG.ignore,
  async fn() {
    await using db = await twoNodes();
    for (let round = 0; round < 4; round++) {
      const at = T0 + round * 10_000;
      const race = (duplicate: "deny" | "replace", tag: string) =>
        Promise.all([
          db.a.sequencer.propose(login("yoda", "a", `a${tag}${round}`, { at, duplicate })),
          db.b.sequencer.propose(login("yoda", "b", `b${tag}${round}`, { at, duplicate })),
        ]);
      const denied = await race("deny", "d");
      await db.caughtUp();
      assert.equal(denied.filter((outcome) => outcome.ok).length, 1, "exactly one admitted");
      const loser = denied.find((outcome) => !outcome.ok);
      assert.deepEqual(loser, { ok: false, reason: "yoda is already logged in" });
      const winner = denied[0]!.ok ? "a" : "b";
      assert.deepEqual(sameOnline(db), [`yoda@${winner}/${winner}d${round}`]);
      assert.match(renderUserLog(db.b.store.online), new RegExp(`^1; .+; yoda; 10\\.0\\.0\\.`));

      const replaced = await race("replace", "r");
      await db.caughtUp();
      assert.ok(replaced.every((outcome) => outcome.ok));
      const [first, second] =
        replaced[0]!.ok && replaced[0]!.replaced?.session === `${winner}d${round}`
          ? [replaced[0]!, replaced[1]!]
          : [replaced[1]!, replaced[0]!];
      const firstNode = first === replaced[0] ? "a" : "b";
      const laterNode = firstNode === "a" ? "b" : "a";
      assert.deepEqual(first.ok && first.replaced, { node: winner, session: `${winner}d${round}` });
      assert.deepEqual(second.ok && second.replaced, {
        node: firstNode,
        session: `${firstNode}r${round}`,
      }, "the later login names the session it replaced and its node");
      assert.deepEqual(sameOnline(db), [`yoda@${laterNode}/${laterNode}r${round}`]);
      const left = await db.a.sequencer.propose({
        t: "logout",
        user: "yoda",
        session: `${laterNode}r${round}`,
        at: at + 5_000,
        reason: "out",
      });
      assert.equal(left.ok && left.left, true);
      await db.caughtUp();
      assert.deepEqual(sameOnline(db), []);
      for (const node of [db.a, db.b]) {
        assert.equal(node.store.lastSeen.times.get("yoda"), at + 5_000);
      }
    }
  },
});
