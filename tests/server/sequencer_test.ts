/**
 * The Sequencer (lib/server/cluster/sequencer.ts) on a real PostgreSQL: nodes on one database
 * proposing at once end with the same state, and each proposer's outcome is the one its node's
 * state shows. decide() itself, in memory, is proposals_test.ts's.
 */
import assert from "node:assert/strict";

import { readChanges } from "../../lib/server/cluster/change_log.ts";
import { type Outcome, type Proposal, proposalOf } from "../../lib/server/cluster/proposals.ts";

import { formatTimestamp } from "../../lib/shared/timestamp.ts";
import { eventually } from "../../testing/eventually.ts";
import { postgresTest } from "../../testing/postgres.ts";
import { type SequencedNode, sequencedNodes } from "../../testing/sequencer_fixture.ts";

const CONFIG = { keepBoard: true, mailboxLimit: 5, mailboxPerSender: 3 };
/** 2024-01-02 03:04:05 UTC, a whole second. */
const T0 = Date.UTC(2024, 0, 2, 3, 4, 5);

function refused(reason: string): Outcome {
  return { ok: false, reason };
}

const pgTest = postgresTest("Sequencer tests");

type Node = SequencedNode;

/** A fresh database with nodes `a` and `b` on it (testing/sequencer_fixture.ts). */
async function cluster() {
  const nodes = await sequencedNodes();
  try {
    const a = await nodes.node("a", { config: CONFIG });
    const b = await nodes.node("b", { config: CONFIG });
    return {
      ...nodes,
      a,
      b,
      /** Waits until both nodes have applied the whole log. */
      caughtUp: () => nodes.caughtUp(a, b),
      /** The proposals in the log, in order. */
      async proposals(): Promise<Proposal[]> {
        const log = await readChanges(nodes.admin, 0, 100_000);
        return log.map(({ change }) => proposalOf(change)).filter((p) => p !== undefined);
      },
    };
  } catch (error) {
    await nodes[Symbol.asyncDispose]();
    throw error;
  }
}

/** What a reader sees of a node's board: the messages, and messagelog.txt once it has caught up. */
async function boardOf(node: Node) {
  const messages = node.store.board.since(-1);
  const lines = messages.length;
  await eventually(
    "messagelog.txt following the board",
    () => node.file("messagelog.txt").split("\n").length - 1 === lines,
  );
  return { messages, file: node.file("messagelog.txt") };
}

pgTest(
  "posts from two nodes at once get contiguous numbers, and both boards end the same",
  async () => {
    await using db = await cluster();
    const COUNT = 10;
    const posts = (node: Node, author: string) =>
      Promise.all(
        Array.from(
          { length: COUNT },
          (_, i) =>
            node.sequencer.propose({ t: "post", author, text: `${author} ${i}`, time: T0 + i }),
        ),
      );
    const [byA, byB] = await Promise.all([posts(db.a, "yoda"), posts(db.b, "hans")]);
    await db.caughtUp();
    const numbers = [...byA, ...byB].map((outcome) => outcome.ok ? outcome.number : 0);
    assert.deepEqual(
      numbers.toSorted((x, y) => x - y),
      Array.from({ length: 2 * COUNT }, (_, i) => i + 1),
    );
    const boardA = await boardOf(db.a);
    const boardB = await boardOf(db.b);
    assert.deepEqual(boardA, boardB);
    assert.equal(boardA.messages.length, 2 * COUNT);
    for (const [node, outcomes, author] of [[db.a, byA, "yoda"], [db.b, byB, "hans"]] as const) {
      outcomes.forEach((outcome, i) => {
        const number = outcome.ok ? outcome.number : 0;
        const shown = node.store.board.since(-1).find((message) => message.number === number);
        assert.deepEqual([shown?.author, shown?.text], [author, `${author} ${i}`]);
      });
    }
  },
);

pgTest(
  "a DLT racing an MSG, and a DLT racing an EDT, on two nodes: both end the same, as each was told",
  async () => {
    await using db = await cluster();
    for (let round = 0; round < 5; round++) {
      const time = T0 + round * 10_000;
      const old = await db.a.sequencer.propose({ t: "post", author: "yoda", text: "old", time });
      assert.deepEqual(old, { ok: true, number: 1, time });
      const [deleted, posted] = await Promise.all([
        db.a.sequencer.propose({
          t: "unpost",
          number: 1,
          time,
          requester: "yoda",
          at: time + 1_000,
        }),
        db.b.sequencer.propose({ t: "post", author: "hans", text: "new", time: time + 1_000 }),
      ]);
      await db.caughtUp();
      const order = (await db.proposals()).slice(-2).map((proposal) => proposal.t);
      assert.equal(deleted.ok && deleted.text, "old");
      assert.equal(posted.ok && posted.number, order[0] === "post" ? 2 : 1, `order ${order}`);
      for (const node of [db.a, db.b]) {
        assert.deepEqual(node.store.board.since(-1).map(({ author, number }) => [author, number]), [
          ["hans", 1],
        ]);
      }
      // The same message deleted on one node and edited on the other: one is refused, everywhere.
      const [gone, edited] = await Promise.all([
        db.a.sequencer.propose({
          t: "unpost",
          number: 1,
          time: time + 1_000,
          requester: "hans",
          at: time + 2_000,
        }),
        db.b.sequencer.propose({
          t: "edit",
          number: 1,
          time: time + 1_000,
          requester: "hans",
          text: "edited",
          at: time + 3_000,
        }),
      ]);
      await db.caughtUp();
      const [first] = (await db.proposals()).slice(-2).map((proposal) => proposal.t);
      if (first === "unpost") {
        assert.equal(gone.ok, true);
        assert.deepEqual(edited, refused("Message #1 does not exist."));
      } else {
        assert.equal(edited.ok, true);
        assert.deepEqual(
          gone,
          refused(`Timestamp ${formatTimestamp(time + 1_000)} does not match Message #1.`),
        );
        assert.equal(
          (await db.b.sequencer.propose({
            t: "unpost",
            number: 1,
            time: time + 3_000,
            requester: "hans",
            at: time + 4_000,
          })).ok,
          true,
        );
        await db.caughtUp();
      }
      assert.deepEqual(await boardOf(db.a), await boardOf(db.b));
      assert.equal(db.a.store.board.size, 0);
    }
  },
);

pgTest(
  "a mailbox filled from two nodes at once never passes its limit, and both agree",
  async () => {
    await using db = await cluster();
    const ATTEMPTS = 4;
    const send = (node: Node, from: string) =>
      Promise.all(
        Array.from(
          { length: ATTEMPTS },
          (_, i) =>
            node.sequencer.propose({
              t: "mail",
              to: "yoda",
              from,
              line: `${from}: ${i}`,
              time: T0,
            }),
        ),
      );
    const [byA, byB] = await Promise.all([send(db.a, "hans"), send(db.b, "leia")]);
    await db.caughtUp();
    const all = [...byA, ...byB];
    assert.equal(all.filter((outcome) => outcome.ok).length, CONFIG.mailboxLimit);
    const reasons = new Set([
      "You already have 3 messages waiting for yoda; wait until they log in.",
      "yoda has too many messages waiting (5); try again after they log in.",
    ]);
    for (const outcome of all) if (!outcome.ok) assert.ok(reasons.has(outcome.reason));
    for (const [outcomes, from] of [[byA, "hans"], [byB, "leia"]] as const) {
      const accepted = outcomes.filter((outcome) => outcome.ok).length;
      assert.ok(accepted <= CONFIG.mailboxPerSender);
      for (const node of [db.a, db.b]) {
        assert.equal(
          node.store.mailbox.countFrom("yoda", from),
          accepted,
        );
      }
    }
    assert.deepEqual(db.a.store.mailbox.ready("yoda"), db.b.store.mailbox.ready("yoda"));
    assert.equal(db.a.store.mailbox.count("yoda"), CONFIG.mailboxLimit);
  },
);

pgTest(
  "two logins racing on two nodes take a user's offline messages exactly once in all",
  async () => {
    await using db = await cluster();
    for (let round = 0; round < 5; round++) {
      const refs: string[] = [];
      for (const [node, from] of [[db.a, "hans"], [db.b, "leia"], [db.a, "yoda"]] as const) {
        const put = await node.sequencer.propose({
          t: "mail",
          to: "vader",
          from,
          line: `${from}: ${round}`,
          time: T0,
        });
        assert.equal(put.ok, true);
        if (put.ok) refs.push(put.ref);
      }
      await db.caughtUp();
      const takes = await Promise.all([
        db.a.sequencer.propose({ t: "take-mail", user: "vader", session: `a${round}` }),
        db.b.sequencer.propose({ t: "take-mail", user: "vader", session: `b${round}` }),
        db.b.sequencer.propose({ t: "take-mail", user: "vader", session: `c${round}` }),
      ]);
      await db.caughtUp();
      const handed = takes.flatMap((take) => take.ok ? take.messages.map(({ ref }) => ref) : []);
      assert.deepEqual(handed.toSorted(), refs.toSorted(), "every message once, none twice");
      assert.equal(takes.filter((take) => take.ok && take.messages.length > 0).length, 1);
      for (const node of [db.a, db.b]) assert.equal(node.store.mailbox.count("vader"), 0);
    }
  },
);
