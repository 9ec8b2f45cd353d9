/**
 * applyChange (lib/server/store/replica.ts): a store that applies, in order, the changes another
 * store recorded reads the same as that store. Store A runs a seeded random sequence of operations
 * on a journal that keeps what it is given; store B, on the same clock, applies those changes; then
 * everything a reader can ask of either is compared.
 */
import assert from "node:assert/strict";
import { CommandError } from "../../lib/shared/errors.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { type Change, emptyContents, type Storage } from "../../lib/server/store/journal.ts";
import { applyChange } from "../../lib/server/store/replica.ts";
import { type TestStore, testStore } from "../../testing/store_fixture.ts";

const USERS = ["hans", "yoda", "vader", "leia"];
const SEEDS = [1, 2, 3, 42, 2024];
const STEPS = 200;

/** A storage that starts empty and keeps every change it is given, in order, in `changes`. */
function recordingStorage(changes: Change[]): Storage {
  const keep = (change: Change) => void changes.push(structuredClone(change));
  return {
    contents: emptyContents(),
    record: (change) => Promise.resolve(keep(change)),
    note: keep,
    close: () => Promise.resolve(),
  };
}

/** A seeded pseudo-random source (mulberry32), so a failing sequence can be run again. */
class Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
}

/** Two stores on one clock: A records into `changes`, B into `own` (which applying must not). */
interface Pair extends AsyncDisposable {
  a: TestStore;
  b: TestStore;
  clock: FakeClock;
  changes: Change[];
  own: Change[];
}

async function pair(): Promise<Pair> {
  const clock = new FakeClock();
  const config = { keepBoard: true, mailboxLimit: 6, mailboxPerSender: 3 };
  const changes: Change[] = [];
  const own: Change[] = [];
  const a = testStore(recordingStorage(changes), { clock, config });
  const b = testStore(recordingStorage(own), { clock, config });
  await Promise.all([a.store.start(), b.store.start()]);
  return {
    a,
    b,
    clock,
    changes,
    own,
    async [Symbol.asyncDispose]() {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

/** Runs `work`; a CommandError is a refusal the sequence expects (a full mailbox, a wrong author). */
async function refusable(work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
  }
}

type Step = (p: Pair, random: Random) => Promise<void> | void;

/** The operations of each section, as a user's commands and logins would make them on A. */
const SECTIONS: Record<string, Step[]> = {
  relations: [
    ({ a }, r) => refusable(() => a.store.relations.block(r.pick(USERS), r.pick(USERS))),
    ({ a }, r) => refusable(() => a.store.relations.unblock(r.pick(USERS), r.pick(USERS))),
  ],
  mailbox: [
    ({ a }, r) =>
      refusable(() =>
        a.store.mailbox.put(r.pick(USERS), {
          from: r.pick(USERS),
          line: `line ${r.int(1000)}`,
          ...(r.int(3) === 0 ? { ref: `r${r.int(1000)}` } : {}),
        })
      ),
    ({ a }, r) => {
      const to = r.pick(USERS);
      a.store.mailbox.delivered(a.store.mailbox.take(to));
    },
    ({ a }, r) => {
      const to = r.pick(USERS);
      a.store.mailbox.putBack(to, a.store.mailbox.take(to));
    },
  ],
  lockout: [
    async ({ a }, r) => void await a.store.guard.recordFailure(r.pick(USERS)),
    async ({ a }, r) => void await a.store.guard.recordFailure(r.pick(USERS)),
    ({ a }, r) => a.store.guard.recordSuccess(r.pick(USERS)),
    ({ clock }, r) => clock.advance(r.int(6_000)),
  ],
  lastSeen: [
    ({ a, clock }, r) => a.store.lastSeen.arrived(r.pick(USERS), clock.now()),
    ({ a, clock }, r) => a.store.lastSeen.left(r.pick(USERS), clock.now()),
    ({ clock }, r) => clock.advance(r.int(5_000)),
  ],
  board: [
    ({ a }, r) =>
      refusable(async () => {
        await (await a.store.board.post(r.pick(USERS), `text ${r.int(1000)}`)).committed;
      }),
    ({ a }, r) =>
      refusable(async () => {
        const { number, time, author } = boardMessage(a, r);
        const text = `edited ${r.int(1000)}`;
        await (await a.store.board.edit(number, time, author, text)).committed;
      }),
    ({ a }, r) =>
      refusable(async () => {
        const { number, time, author } = boardMessage(a, r);
        await (await a.store.board.remove(number, time, author)).committed;
      }),
    ({ clock }, r) => clock.advance(r.int(3_000)),
  ],
};

/** A message to edit or delete: mostly a real one by its author, sometimes a wrong detail. */
function boardMessage(t: TestStore, r: Random): { number: number; time: number; author: string } {
  const messages = t.store.board.since(0);
  const number = r.int(messages.length + 1) + 1;
  const message = messages.find((m) => m.number === number);
  return {
    number,
    time: message?.time ?? 0,
    author: r.int(5) === 0 ? r.pick(USERS) : message?.author ?? "hans",
  };
}

/** What any reader can see of a store without changing it. */
function view(t: TestStore) {
  const { relations, mailbox, guard, lastSeen, board, userLog } = t.store;
  return {
    canReach: USERS.flatMap((x) => USERS.filter((y) => relations.canReach(x, y)).map((y) => x + y)),
    waiting: USERS.map((
      to,
    ) => [mailbox.count(to), ...USERS.map((from) => mailbox.countFrom(to, from))]),
    locked: USERS.filter((user) => guard.isLocked(user)),
    seen: [...lastSeen.times].sort(([x], [y]) => x.localeCompare(y)),
    board: board.since(0),
    messageLog: t.file("messagelog.txt"),
    users: userLog.users,
  };
}

/** What is left to see by changing the store: the messages handed out, the next failures. */
async function drain(t: TestStore) {
  const { mailbox, guard } = t.store;
  const taken = USERS.map((to) => mailbox.take(to));
  const failures = [];
  for (const user of USERS) {
    for (let i = 0; i < guard.maxFailures; i++) failures.push(await guard.recordFailure(user));
  }
  return { taken, failures };
}

/** Applies `changes` to `t` in order, then waits for the files they touched. */
async function applyAll(t: TestStore, changes: readonly Change[]): Promise<void> {
  await Promise.all(changes.map((change) => applyChange(t.store, change)));
}

/**
 * Runs `steps` random operations of `steps` on A, applying what A recorded to B after each and
 * comparing what either shows; ends comparing what draining them shows.
 */
async function replicate(
  p: Pair,
  seed: number,
  steps: Step[],
  apply = (t: TestStore, changes: Change[]) => applyAll(t, changes),
): Promise<void> {
  const random = new Random(seed);
  let applied = 0;
  for (let i = 0; i < STEPS; i++) {
    await random.pick(steps)(p, random);
    await apply(p.b, p.changes.slice(applied));
    applied = p.changes.length;
    assert.deepEqual(view(p.b), view(p.a), `after step ${i} of seed ${seed}`);
  }
  assert.deepEqual(p.own, [], "B wrote down nothing it applied");
  assert.deepEqual(await drain(p.b), await drain(p.a));
}

for (const [section, steps] of Object.entries(SECTIONS)) {
  Deno.test(`applyChange() makes a replica of the ${section} over random sequences`, async () => {
    for (const seed of SEEDS) {
      await using p = await pair();
      await replicate(p, seed, steps);
      assert.ok(p.changes.length > 0, `seed ${seed} recorded changes`);
    }
  });
}

const ALL_STEPS = Object.values(SECTIONS).flat();

Deno.test("applyChange() makes a replica of every section at once", async () => {
  for (const seed of SEEDS) {
    await using p = await pair();
    await replicate(p, seed, ALL_STEPS);
    const kinds = new Set(p.changes.map((change) => change.t));
    for (const kind of ["block", "mail", "delivered", "lockout", "seen", "post", "unpost"]) {
      assert.ok(kinds.has(kind as Change["t"]), `seed ${seed} recorded a ${kind} change`);
    }
  }
});

Deno.test("applyChange() applying each change twice leaves what applying it once does", async () => {
  for (const seed of SEEDS) {
    await using p = await pair();
    await replicate(p, seed, ALL_STEPS, async (t, changes) => {
      for (const change of changes) await applyAll(t, [change, change]);
    });
  }
});

Deno.test("applyChange() applying the whole log again leaves the same state", async () => {
  for (const seed of SEEDS) {
    await using p = await pair();
    const random = new Random(seed);
    for (let i = 0; i < STEPS; i++) await random.pick(ALL_STEPS)(p, random);
    await applyAll(p.b, p.changes);
    const once = view(p.b);
    await applyAll(p.b, p.changes);
    assert.deepEqual(view(p.b), once);
    assert.deepEqual(view(p.b), view(p.a));
    assert.deepEqual(await drain(p.b), await drain(p.a));
  }
});

Deno.test("a replica's own messages and posts get ids past those it applied", async () => {
  for (const seed of SEEDS) {
    await using p = await pair();
    const random = new Random(seed);
    for (let i = 0; i < STEPS; i++) await random.pick(ALL_STEPS)(p, random);
    await (await p.a.store.board.post("hans", "the last of A")).committed;
    await applyAll(p.b, p.changes);
    const mailIds = p.changes.flatMap((c) => c.t === "mail" ? [c.mail.id] : []);
    const postIds = p.changes.flatMap((c) => c.t === "post" ? [c.post.id] : []);
    assert.ok(mailIds.length > 0 && postIds.length > 0);

    // B's own changes, written down as B makes them.
    p.b.store.mailbox.take("obiwan");
    await p.b.store.mailbox.put("obiwan", { from: "hans", line: "from B" });
    await (await p.b.store.board.post("yoda", "from B")).committed;
    const mail = p.own.find((c) => c.t === "mail");
    const post = p.own.find((c) => c.t === "post");
    assert.ok(mail?.t === "mail" && post?.t === "post");
    assert.equal(mail.mail.id, Math.max(...mailIds) + 1);
    assert.equal(post.post.id, Math.max(...postIds) + 1);
    assert.equal(p.b.store.board.since(0).at(-1)?.text, "from B");

    // Applied back on A, the two are one again.
    await applyAll(p.a, p.own);
    assert.deepEqual(view(p.a), view(p.b));
    assert.deepEqual(await drain(p.a), await drain(p.b));
  }
});

Deno.test("applyChange() clears the board, whose ids still continue past its old ones", async () => {
  await using p = await pair();
  const { board } = p.b.store;
  const post = (id: number, text: string) => ({
    t: "post" as const,
    post: { id, author: "hans", text, time: p.clock.now(), edited: false },
  });
  await applyAll(p.b, [post(1, "one"), post(3, "three"), post(2, "two")]);
  assert.deepEqual(board.since(0).map((m) => m.text), ["one", "two", "three"], "in id order");
  assert.match(p.b.file("messagelog.txt"), /^1; .*; hans; one; no\n2; .*two.*\n3; .*three/);
  await applyAll(p.b, [{ t: "unpost", id: 2 }, { t: "unpost", id: 2 }]);
  assert.deepEqual(board.since(0).map((m) => [m.number, m.text]), [[1, "one"], [2, "three"]]);
  await applyAll(p.b, [{ t: "clear-board" }, { t: "clear-board" }]);
  assert.equal(board.size, 0);
  assert.equal(p.b.file("messagelog.txt"), "");
  await (await board.post("yoda", "after")).committed;
  assert.deepEqual(p.own.map((c) => c.t === "post" && c.post.id), [4]);
  assert.equal(p.b.file("messagelog.txt").split("; ")[0], "1");
});

Deno.test("a mail applied again is not handed out twice by the node that took it", async () => {
  await using p = await pair();
  const { mailbox } = p.b.store;
  const mail: Change = {
    t: "mail",
    mail: { id: 7, to: "yoda", from: "hans", line: "hans: hi", ref: "r7", time: 0 },
  };
  await applyAll(p.b, [mail]);
  const taken = mailbox.take("yoda");
  assert.deepEqual(taken, [{ id: 7, from: "hans", line: "hans: hi", ref: "r7" }]);
  await applyAll(p.b, [mail]);
  assert.equal(mailbox.count("yoda"), 0, "taken and not yet delivered");
  mailbox.putBack("yoda", taken);
  await applyAll(p.b, [mail]);
  assert.equal(mailbox.count("yoda"), 1, "put back once");
  await applyAll(p.b, [{ t: "delivered", ids: [7] }, { t: "delivered", ids: [7] }]);
  assert.equal(mailbox.count("yoda"), 0);
  assert.deepEqual(p.own, [], "nothing written down");
});

Deno.test("applyChange() applies a lockout's recorded values, not a count of its own", async () => {
  await using p = await pair();
  const { guard } = p.b.store;
  const until = p.clock.now() + 5_000;
  await applyAll(p.b, [{ t: "lockout", user: "hans", failures: 2, until }]);
  await applyAll(p.b, [{ t: "lockout", user: "hans", failures: 2, until }]);
  assert.equal(await guard.recordFailure("hans"), "locked", "the third failure of three");
  await applyAll(p.b, [{ t: "lockout", user: "hans", failures: 0, until }]);
  p.clock.advance(4_999);
  assert.equal(guard.isLocked("hans"), true);
  p.clock.advance(1);
  assert.equal(guard.isLocked("hans"), false, "the recorded end, to the millisecond");
  await applyAll(p.b, [{ t: "lockout", user: "hans", failures: 2, until }]);
  await applyAll(p.b, [{ t: "lockout", user: "hans", failures: 0, until: 0 }]);
  assert.equal(guard.isLocked("hans"), false);
  assert.equal(await guard.recordFailure("hans"), "try-again");
});

Deno.test("applyChange() leaves accounts, presence and the user log to their own node", async () => {
  await using p = await pair();
  await p.a.store.accounts.register("newbie", "secret-password");
  p.a.store.lastSeen.arrived("newbie", p.clock.now());
  const kinds = p.changes.map((change) => change.t);
  assert.deepEqual(kinds, ["account", "account-done", "online"]);
  const credentials = p.b.file("credentials.txt");
  await applyAll(p.b, p.changes);
  assert.equal(p.b.file("credentials.txt"), credentials, "B's credentials.txt is B's own");
  assert.equal(await p.b.store.accounts.find("newbie"), undefined);
  assert.deepEqual(view(p.b), view(p.a));
  assert.deepEqual(p.own, []);
});
