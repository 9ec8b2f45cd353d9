/** The offline mailbox of lib/server/mailbox.ts: per-recipient queues with a limit. */
import assert from "node:assert/strict";
import { FakeClock } from "../../lib/shared/clock.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { Mailbox } from "../../lib/server/mailbox.ts";
import type { Change, Journal, StoredMessage } from "../../lib/server/store/journal.ts";

/** The shape of a ref the mailbox makes up when the sender gave none. */
const GENERATED_REF = /^o[0-9a-f]{16}$/;

/** What a recipient reads of taken messages: sender and line, in order. */
function lines(messages: StoredMessage[]): Array<{ from: string; line: string }> {
  return messages.map(({ from, line }) => ({ from, line }));
}

/** A journal that keeps the changes it is given, or rejects them all when `failing`. */
function fakeJournal(): Journal & { changes: Change[]; failing: boolean } {
  const journal = {
    changes: [] as Change[],
    failing: false,
    record(change: Change): Promise<void> {
      if (journal.failing) return Promise.reject(new Error("disk I/O error"));
      journal.changes.push(change);
      return Promise.resolve();
    },
    note(change: Change): void {
      journal.changes.push(change);
    },
    close: () => Promise.resolve(),
  };
  return journal;
}

Deno.test("Mailbox.take() returns nothing for someone with no mail", () => {
  const mailbox = new Mailbox(10);
  assert.deepEqual(mailbox.take("yoda"), []);
  assert.equal(mailbox.count("yoda"), 0);
});

Deno.test("Mailbox.take() returns messages oldest first and empties the queue", async () => {
  const mailbox = new Mailbox(10);
  await mailbox.put("yoda", { from: "hans", line: "hans: one" });
  await mailbox.put("yoda", { from: "leia", line: "leia: two" });
  await mailbox.put("yoda", { from: "hans", line: "hans: three" });
  assert.equal(mailbox.count("yoda"), 3);
  const taken = mailbox.take("yoda");
  assert.deepEqual(lines(taken), [
    { from: "hans", line: "hans: one" },
    { from: "leia", line: "leia: two" },
    { from: "hans", line: "hans: three" },
  ]);
  // Ids grow with each message; each message got its own generated ref.
  const ids = taken.map((message) => message.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(new Set(ids).size, 3);
  for (const { ref } of taken) assert.match(ref, GENERATED_REF);
  assert.equal(new Set(taken.map((message) => message.ref)).size, 3);
  assert.equal(mailbox.count("yoda"), 0);
  assert.deepEqual(mailbox.take("yoda"), []);
});

Deno.test("Mailbox keeps the sender's ref, and makes one up when there is none", async () => {
  const mailbox = new Mailbox(10);
  await mailbox.put("yoda", { from: "hans", line: "hans: with a ref", ref: "c42" });
  await mailbox.put("yoda", { from: "hans", line: "hans: without" });
  const [first, second] = mailbox.take("yoda");
  assert.equal(first?.ref, "c42");
  assert.match(second?.ref ?? "", GENERATED_REF);
});

Deno.test("Mailbox keeps a queue per recipient", async () => {
  const mailbox = new Mailbox(10);
  await mailbox.put("yoda", { from: "hans", line: "to yoda" });
  await mailbox.put("leia", { from: "hans", line: "to leia" });
  assert.deepEqual(lines(mailbox.take("leia")), [{ from: "hans", line: "to leia" }]);
  assert.equal(mailbox.count("yoda"), 1);
});

Deno.test("Mailbox.put() refuses a message once the recipient's queue is full", async () => {
  const mailbox = new Mailbox(2);
  await mailbox.put("yoda", { from: "hans", line: "1" });
  await mailbox.put("yoda", { from: "hans", line: "2" });
  await assert.rejects(
    () => mailbox.put("yoda", { from: "hans", line: "3" }),
    (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(
        error.message,
        "yoda has too many messages waiting (2); try again after they log in.",
      );
      return true;
    },
  );
  assert.equal(mailbox.count("yoda"), 2);
  await mailbox.put("leia", { from: "hans", line: "other recipients are unaffected" });
});

Deno.test("Mailbox.put() accepts messages again after take()", async () => {
  const mailbox = new Mailbox(1);
  await mailbox.put("yoda", { from: "hans", line: "1" });
  mailbox.take("yoda");
  await mailbox.put("yoda", { from: "hans", line: "2" });
  assert.deepEqual(lines(mailbox.take("yoda")), [{ from: "hans", line: "2" }]);
});

Deno.test("Mailbox with a limit of 0 stores nothing", async () => {
  const mailbox = new Mailbox(0);
  await assert.rejects(() => mailbox.put("yoda", { from: "hans", line: "x" }), CommandError);
  assert.equal(mailbox.count("yoda"), 0);
});

Deno.test("Mailbox.put() holds one sender to a share of the recipient's slots (20 of 100 by default)", async () => {
  const mailbox = new Mailbox(100);
  assert.equal(mailbox.perSender, 20);
  for (let i = 0; i < 20; i++) await mailbox.put("vader", { from: "yoda", line: `yoda: ${i}` });
  await assert.rejects(
    () => mailbox.put("vader", { from: "yoda", line: "yoda: one too many" }),
    (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(
        error.message,
        "You already have 20 messages waiting for vader; wait until they log in.",
      );
      return true;
    },
  );
  assert.equal(mailbox.countFrom("vader", "yoda"), 20);
  // Others still have room, and yoda still has room with other recipients.
  await mailbox.put("vader", { from: "hans", line: "hans: hello" });
  await mailbox.put("leia", { from: "yoda", line: "yoda: hello" });
  assert.equal(mailbox.count("vader"), 21);
  // Once vader has read them, yoda's share is free again.
  mailbox.take("vader");
  await mailbox.put("vader", { from: "yoda", line: "yoda: again" });
});

Deno.test("Mailbox shares are configurable, and five full shares fill a queue of 100", async () => {
  const mailbox = new Mailbox(100);
  for (const from of ["a", "b", "c", "d", "e"]) {
    for (let i = 0; i < 20; i++) await mailbox.put("vader", { from, line: `${from}: ${i}` });
  }
  await assert.rejects(
    () => mailbox.put("vader", { from: "f", line: "f: 1" }),
    /vader has too many messages waiting \(100\); try again after they log in\./,
  );
  const one = new Mailbox(10, { perSender: 1 });
  await one.put("vader", { from: "yoda", line: "1" });
  await assert.rejects(
    () => one.put("vader", { from: "yoda", line: "2" }),
    /^CommandError: You already have 1 message waiting for vader; wait until they log in\.$/,
  );
});

Deno.test("Mailbox.put() writes the message down, with its recipient, ref and time", async () => {
  const journal = fakeJournal();
  const clock = new FakeClock(1_000);
  const mailbox = new Mailbox(10, { journal, clock });
  await mailbox.put("yoda", { from: "hans", line: "hans: hi", ref: "c7" });
  const [stored] = mailbox.take("yoda");
  assert.ok(stored);
  assert.deepEqual(journal.changes, [{
    t: "mail",
    mail: { id: stored.id, to: "yoda", from: "hans", line: "hans: hi", ref: "c7", time: 1_000 },
  }]);
});

Deno.test("Mailbox.put() rejects, and keeps nothing, when the message cannot be written down", async () => {
  const journal = fakeJournal();
  const mailbox = new Mailbox(10, { journal });
  await mailbox.put("yoda", { from: "hans", line: "hans: kept" });
  journal.failing = true;
  await assert.rejects(
    () => mailbox.put("yoda", { from: "hans", line: "hans: lost" }),
    (error: unknown) => {
      assert.ok(error instanceof CommandError);
      assert.equal(error.message, "The server could not store the message; try again later.");
      return true;
    },
  );
  assert.equal(mailbox.count("yoda"), 1);
  assert.equal(mailbox.countFrom("yoda", "hans"), 1);
  await assert.rejects(() => mailbox.put("leia", { from: "hans", line: "hans: lost too" }));
  assert.equal(mailbox.count("leia"), 0);
  assert.deepEqual(mailbox.take("leia"), []);
  assert.deepEqual(lines(mailbox.take("yoda")), [{ from: "hans", line: "hans: kept" }]);
});

Deno.test("Mailbox.delivered() writes down which taken messages are gone", async () => {
  const journal = fakeJournal();
  const mailbox = new Mailbox(10, { journal });
  await mailbox.put("yoda", { from: "hans", line: "hans: one" });
  await mailbox.put("yoda", { from: "leia", line: "leia: two" });
  const taken = mailbox.take("yoda");
  journal.changes.length = 0;
  mailbox.delivered(taken);
  assert.deepEqual(journal.changes, [{ t: "delivered", ids: taken.map((message) => message.id) }]);
  assert.equal(mailbox.count("yoda"), 0);
  // Nothing taken, nothing written.
  mailbox.delivered([]);
  assert.equal(journal.changes.length, 1);
});

Deno.test("Mailbox.putBack() puts taken messages first in line again", async () => {
  const mailbox = new Mailbox(10);
  await mailbox.put("yoda", { from: "hans", line: "hans: one" });
  await mailbox.put("yoda", { from: "leia", line: "leia: two" });
  const taken = mailbox.take("yoda");
  // A message that arrives in between waits behind those that were taken.
  await mailbox.put("yoda", { from: "hans", line: "hans: three" });
  mailbox.putBack("yoda", taken);
  assert.equal(mailbox.count("yoda"), 3);
  assert.equal(mailbox.countFrom("yoda", "hans"), 2);
  const again = mailbox.take("yoda");
  assert.deepEqual(lines(again), [
    { from: "hans", line: "hans: one" },
    { from: "leia", line: "leia: two" },
    { from: "hans", line: "hans: three" },
  ]);
  // They are the same messages: same ids and refs.
  assert.deepEqual(again.slice(0, 2), taken);
  mailbox.putBack("yoda", []);
  assert.equal(mailbox.count("yoda"), 0);
});

Deno.test("Mailbox.putBack() returns messages into an empty queue too", async () => {
  const mailbox = new Mailbox(10);
  await mailbox.put("yoda", { from: "hans", line: "hans: one" });
  const taken = mailbox.take("yoda");
  mailbox.putBack("yoda", taken);
  assert.deepEqual(mailbox.take("yoda"), taken);
});

Deno.test("Mailbox starts with the messages that were waiting, and numbers new ones after them", async () => {
  const mailbox = new Mailbox(10, {
    waiting: [
      { id: 7, to: "yoda", from: "hans", line: "hans: old", ref: "c1", time: 5 },
      { id: 3, to: "leia", from: "yoda", line: "yoda: older", ref: "c2", time: 4 },
    ],
  });
  assert.equal(mailbox.count("yoda"), 1);
  await mailbox.put("yoda", { from: "leia", line: "leia: new" });
  const taken = mailbox.take("yoda");
  assert.deepEqual(taken[0], { id: 7, from: "hans", line: "hans: old", ref: "c1" });
  assert.ok((taken[1]?.id ?? 0) > 7);
  assert.deepEqual(mailbox.take("leia"), [{ id: 3, from: "yoda", line: "yoda: older", ref: "c2" }]);
});
