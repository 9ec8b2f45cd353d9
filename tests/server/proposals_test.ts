/**
 * Proposals (lib/server/cluster/proposals.ts): decide() in memory. The same proposals on two
 * stores decide the same, with the sections' refusal texts, ids and numbers taken from the store,
 * offline messages taken once, nothing written down. The Sequencer on PostgreSQL is
 * sequencer_test.ts's.
 */
import assert from "node:assert/strict";

import {
  decide,
  type Outcome,
  type Proposal,
  proposalOf,
} from "../../lib/server/cluster/proposals.ts";

import { type Change, emptyContents, type Storage } from "../../lib/server/store/journal.ts";

import { formatTimestamp } from "../../lib/shared/timestamp.ts";

import { type TestStore, testStore } from "../../testing/store_fixture.ts";

const CONFIG = { keepBoard: true, mailboxLimit: 5, mailboxPerSender: 3 };
/** 2024-01-02 03:04:05 UTC, a whole second. */
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

/** A storage that starts empty and keeps what it is asked to write down, in `written`. */
function recordingStorage(written: Change[]): Storage {
  return {
    contents: emptyContents(),
    record: (change) => Promise.resolve(void written.push(change)),
    note: (change) => void written.push(change),
    close: () => Promise.resolve(),
  };
}

/** A started store in memory; `written` is what it wrote down. */
async function memoryNode(): Promise<TestStore & { written: Change[] }> {
  const written: Change[] = [];
  const node = testStore(recordingStorage(written), { config: CONFIG });
  await node.store.start();
  return Object.assign(node, { written });
}

/** Decides `proposal` on `node` and waits for its files; returns the outcome. */
async function decided<P extends Proposal>(node: TestStore, proposal: P): Promise<Outcome<P["t"]>> {
  const { outcome, written } = decide(node.store, proposal);
  await written;
  return outcome;
}

function refused(reason: string): Outcome {
  return { ok: false, reason };
}

/** A mix of proposals, refusals among them, touching every kind. */
const SCRIPT: Proposal[] = [
  { t: "post", author: "yoda", text: "first", time: T0 + 300 },
  { t: "post", author: "hans", text: "second", time: T0 + 1_000 },
  { t: "post", author: "yoda", text: "third", time: T0 + 2_000 },
  { t: "edit", number: 1, time: T0, requester: "yoda", text: "first!", at: T0 + 3_000 },
  { t: "unpost", number: 2, time: T0 + 1_000, requester: "yoda", at: T0 + 4_000 },
  { t: "unpost", number: 2, time: T0 + 1_000, requester: "hans", at: T0 + 4_000 },
  { t: "post", author: "leia", text: "fourth", time: T0 + 5_000 },
  { t: "unpost", number: 9, time: T0, requester: "yoda", at: T0 + 6_000 },
  ...[1, 2, 3, 4].map((n): Proposal => ({
    t: "mail",
    to: "vader",
    from: "hans",
    line: `hans: ${n}`,
    time: T0 + n,
  })),
  { t: "mail", to: "vader", from: "leia", line: "leia: hi", ref: "r1", time: T0 },
  { t: "mail", to: "vader", from: "leia", line: "leia: again", time: T0 },
  { t: "mail", to: "vader", from: "yoda", line: "yoda: full?", time: T0 },
  { t: "take-mail", user: "vader", session: "s1" },
  { t: "take-mail", user: "vader", session: "s2" },
  { t: "block", by: "yoda", other: "hans" },
  { t: "block", by: "yoda", other: "hans" },
  { t: "unblock", by: "yoda", other: "hans" },
  { t: "unblock", by: "yoda", other: "hans" },
  { t: "block", by: "leia", other: "vader" },
];

Deno.test("decide() on two stores given the same proposals decides the same and ends the same", async () => {
  await using a = await memoryNode();
  await using b = await memoryNode();
  const byA = [];
  const byB = [];
  for (const proposal of SCRIPT) {
    byA.push(await decided(a, proposal));
    byB.push(await decided(b, proposal));
  }
  assert.deepEqual(byA, byB);
  assert.deepEqual(a.store.board.since(0), b.store.board.since(0));
  assert.equal(a.file("messagelog.txt"), b.file("messagelog.txt"));
  assert.equal(
    a.file("messagelog.txt"),
    `1; ${formatTimestamp(T0 + 3_000)}; yoda; first!; yes\n` +
      `2; ${formatTimestamp(T0 + 2_000)}; yoda; third; no\n` +
      `3; ${formatTimestamp(T0 + 5_000)}; leia; fourth; no\n`,
  );
  assert.deepEqual(a.store.mailbox.count("vader"), 0);
  assert.equal(a.store.relations.hasBlocked("leia", "vader"), true);
  assert.equal(b.store.relations.hasBlocked("leia", "vader"), true);
  assert.equal(a.store.relations.hasBlocked("yoda", "hans"), false);
  assert.deepEqual(a.written, [], "deciding writes nothing down");
  assert.deepEqual(b.written, []);
});

Deno.test("decide() numbers posts from the board, and edits and deletes by number", async () => {
  await using node = await memoryNode();
  const post = (text: string, time: number) =>
    decided(node, { t: "post", author: "yoda", text, time });
  assert.deepEqual(await post("a", T0 + 999), { ok: true, number: 1, time: T0 });
  assert.deepEqual(await post("b", T0 + 1_000), { ok: true, number: 2, time: T0 + 1_000 });
  assert.deepEqual(await post("c", T0 + 2_000), { ok: true, number: 3, time: T0 + 2_000 });
  const idBefore = node.store.board.nextId;
  assert.deepEqual(
    await decided(node, {
      t: "unpost",
      number: 2,
      time: T0 + 1_000,
      requester: "yoda",
      at: T0 + 7_500,
    }),
    { ok: true, number: 2, author: "yoda", text: "b", edited: false, time: T0 + 7_000 },
  );
  assert.deepEqual(await post("d", T0 + 8_000), { ok: true, number: 3, time: T0 + 8_000 });
  assert.equal(node.store.board.nextId, idBefore + 1, "a post takes the next id");
  assert.deepEqual(
    await decided(node, {
      t: "edit",
      number: 2,
      time: T0 + 2_000,
      requester: "yoda",
      text: "c2",
      at: T0 + 9_000,
    }),
    { ok: true, number: 2, author: "yoda", time: T0 + 9_000 },
  );
  assert.deepEqual(
    node.store.board.since(0).map(({ number, text, edited }) => ({ number, text, edited })),
    [
      { number: 1, text: "a", edited: false },
      { number: 3, text: "d", edited: false },
      { number: 2, text: "c2", edited: true },
    ],
  );
});

Deno.test("decide() refuses with the sections' texts, and a refusal changes nothing", async () => {
  await using node = await memoryNode();
  await decided(node, { t: "post", author: "yoda", text: "a", time: T0 });
  const board = () => node.file("messagelog.txt");
  const before = board();
  const cases: Array<[Proposal, string]> = [
    [
      { t: "unpost", number: 2, time: T0, requester: "yoda", at: T0 },
      "Message #2 does not exist.",
    ],
    [
      { t: "edit", number: 0, time: T0, requester: "yoda", text: "x", at: T0 },
      "Message #0 does not exist.",
    ],
    [
      { t: "unpost", number: 1, time: T0 + 1_000, requester: "yoda", at: T0 },
      `Timestamp ${formatTimestamp(T0 + 1_000)} does not match Message #1.`,
    ],
    [
      { t: "unpost", number: 1, time: T0, requester: "hans", at: T0 },
      "Unauthorised to delete Message #1.",
    ],
    [
      { t: "edit", number: 1, time: T0, requester: "hans", text: "x", at: T0 },
      "Unauthorised to edit Message #1.",
    ],
  ];
  for (const [proposal, reason] of cases) {
    const { outcome, changes } = decide(node.store, proposal);
    assert.deepEqual(outcome, refused(reason));
    assert.deepEqual(changes, []);
  }
  assert.equal(board(), before);
  // The same texts as the board's own commands give.
  await assert.rejects(() => node.store.board.remove(1, T0, "hans"), {
    message: "Unauthorised to delete Message #1.",
  });
  const mail = (from: string) =>
    decide(node.store, { t: "mail", to: "yoda", from, line: `${from}: hi`, time: T0 });
  for (let i = 0; i < 3; i++) assert.equal(mail("hans").outcome.ok, true);
  assert.deepEqual(
    mail("hans").outcome,
    refused("You already have 3 messages waiting for yoda; wait until they log in."),
  );
  for (let i = 0; i < 2; i++) assert.equal(mail("leia").outcome.ok, true);
  const full = mail("vader");
  assert.deepEqual(
    full.outcome,
    refused("yoda has too many messages waiting (5); try again after they log in."),
  );
  assert.deepEqual(full.changes, []);
  assert.equal(node.store.mailbox.count("yoda"), 5);
  await assert.rejects(() => node.store.mailbox.put("yoda", { from: "vader", line: "x" }), {
    message: "yoda has too many messages waiting (5); try again after they log in.",
  });
});

Deno.test("decide() gives offline messages ids from the mailbox and hands them out once", async () => {
  await using a = await memoryNode();
  await using b = await memoryNode();
  for (const node of [a, b]) {
    const put = (line: string, ref?: string) =>
      decided(node, {
        t: "mail",
        to: "leia",
        from: "hans",
        line,
        time: T0,
        ...(ref ? { ref } : {}),
      });
    assert.deepEqual(await put("one", "given"), { ok: true, id: 1, ref: "given" });
    const second = await put("two");
    assert.equal(second.ok && second.id, 2);
    assert.match(second.ok ? second.ref : "", /^o[0-9a-f]{16}$/);
  }
  assert.deepEqual(
    await decided(a, { t: "mail", to: "leia", from: "yoda", line: "three", time: T0 }),
    await decided(b, { t: "mail", to: "leia", from: "yoda", line: "three", time: T0 }),
    "a ref made without one given is the same on every node",
  );
  const first = decide(a.store, { t: "take-mail", user: "leia", session: "s1" });
  assert.deepEqual(
    first.outcome.ok && first.outcome.messages.map(({ id, line }) => ({ id, line })),
    [{ id: 1, line: "one" }, { id: 2, line: "two" }, { id: 3, line: "three" }],
  );
  assert.deepEqual(first.changes, [{ t: "delivered", ids: [1, 2, 3] }]);
  const second = decide(a.store, { t: "take-mail", user: "leia", session: "s2" });
  assert.deepEqual(second.outcome, { ok: true, messages: [] });
  assert.deepEqual(second.changes, []);
  assert.equal(a.store.mailbox.count("leia"), 0);
  assert.equal(
    (await decided(a, { t: "mail", to: "leia", from: "hans", line: "4", time: T0 })).ok &&
      a.store.mailbox.ready("leia")[0]?.id,
    4,
    "ids go on past the messages handed out",
  );
});

Deno.test("decide() blocks and unblocks, saying whether anything changed", async () => {
  await using node = await memoryNode();
  const relations = node.store.relations;
  assert.deepEqual(decide(node.store, { t: "block", by: "yoda", other: "hans" }).changes, [
    { t: "block", by: "yoda", other: "hans" },
  ]);
  assert.equal(relations.canReach("hans", "yoda"), false);
  const again = decide(node.store, { t: "block", by: "yoda", other: "hans" });
  assert.deepEqual([again.outcome, again.changes], [{ ok: true, changed: false }, []]);
  assert.deepEqual(
    decide(node.store, { t: "unblock", by: "yoda", other: "hans" }).outcome,
    { ok: true, changed: true },
  );
  assert.equal(relations.canReach("hans", "yoda"), true);
  assert.deepEqual(
    decide(node.store, { t: "unblock", by: "yoda", other: "hans" }).outcome,
    { ok: true, changed: false },
  );
  assert.equal(proposalOf({ t: "block" }), undefined);
});

// ---- Two nodes on one PostgreSQL database ----
