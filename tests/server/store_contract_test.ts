/**
 * The Store contract (lib/server/store/store.ts): every rule its sections promise, run against
 * each storage: in memory, on toom.db and on PostgreSQL. What must survive a restart is in
 * durable_store_test.ts.
 */
import assert from "node:assert/strict";
import { formatTimestamp } from "../../lib/shared/timestamp.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { postgresTests } from "../../testing/postgres.ts";
import { sqliteTests, STORAGES } from "../../testing/store_fixture.ts";

sqliteTests("Store contract tests on SQLite");
postgresTests("Store contract tests on PostgreSQL");

for (const { name, ignore, make } of STORAGES) {
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({ name: `Store on ${name} storage: ${title}`, ignore, fn });

  test("offline messages come out oldest first, across senders", async () => {
    await using t = await make();
    const { mailbox } = t.store;
    await mailbox.put("yoda", { from: "hans", line: "hans: one" });
    await mailbox.put("yoda", { from: "vader", line: "vader: two" });
    await mailbox.put("obiwan", { from: "hans", line: "hans: elsewhere" });
    await mailbox.put("yoda", { from: "hans", line: "hans: three", ref: "r3" });
    assert.equal(mailbox.count("yoda"), 3);
    const taken = mailbox.take("yoda");
    assert.deepEqual(taken.map((m) => m.line), ["hans: one", "vader: two", "hans: three"]);
    assert.equal(taken[2]!.ref, "r3");
    assert.match(taken[0]!.ref, /^o[0-9a-f]{16}$/);
    assert.equal(new Set(taken.map((m) => m.id)).size, 3, "each message has an id of its own");
    assert.equal(mailbox.count("yoda"), 0);
    assert.deepEqual(mailbox.take("yoda"), []);
    assert.equal(mailbox.count("obiwan"), 1);
  });

  test("one sender's share of a mailbox is refused once full, then the whole", async () => {
    await using t = await make({ config: { mailboxLimit: 4, mailboxPerSender: 2 } });
    const { mailbox } = t.store;
    await mailbox.put("yoda", { from: "hans", line: "1" });
    await mailbox.put("yoda", { from: "hans", line: "2" });
    await assert.rejects(
      mailbox.put("yoda", { from: "hans", line: "3" }),
      (error: unknown) =>
        error instanceof CommandError &&
        error.message === "You already have 2 messages waiting for yoda; wait until they log in.",
    );
    assert.equal(mailbox.countFrom("yoda", "hans"), 2);
    // Others still get in, up to the mailbox's own limit.
    await mailbox.put("yoda", { from: "vader", line: "4" });
    await mailbox.put("yoda", { from: "obiwan", line: "5" });
    await assert.rejects(
      mailbox.put("yoda", { from: "leia", line: "6" }),
      (error: unknown) =>
        error instanceof CommandError &&
        error.message === "yoda has too many messages waiting (4); try again after they log in.",
    );
    assert.equal(mailbox.count("yoda"), 4);
    assert.deepEqual(mailbox.take("yoda").map((m) => m.line), ["1", "2", "4", "5"]);
    // Taken messages no longer count against the sender's share.
    await mailbox.put("yoda", { from: "hans", line: "7" });
    assert.equal(mailbox.count("yoda"), 1);
  });

  test("messages put back wait first in line; delivered ones are gone", async () => {
    await using t = await make();
    const { mailbox } = t.store;
    await mailbox.put("yoda", { from: "hans", line: "a" });
    await mailbox.put("yoda", { from: "hans", line: "b" });
    const taken = mailbox.take("yoda");
    // The connection died before it had them; meanwhile another message came.
    await mailbox.put("yoda", { from: "vader", line: "c" });
    mailbox.putBack("yoda", taken);
    assert.equal(mailbox.countFrom("yoda", "hans"), 2);
    const again = mailbox.take("yoda");
    assert.deepEqual(again.map((m) => m.line), ["a", "b", "c"]);
    assert.deepEqual(again.slice(0, 2), taken, "the same messages, ids and refs");
    await mailbox.delivered(again);
    await mailbox.delivered([]);
    assert.equal(mailbox.count("yoda"), 0);
    assert.deepEqual(mailbox.take("yoda"), []);
  });

  test("blocks are one-way, reported once, and undone by unblock", async () => {
    await using t = await make();
    const { relations } = t.store;
    assert.equal(relations.canReach("hans", "yoda"), true);
    assert.equal(await relations.block("yoda", "hans"), true);
    assert.equal(await relations.block("yoda", "hans"), false, "already blocked");
    assert.equal(relations.hasBlocked("yoda", "hans"), true);
    assert.equal(relations.canReach("hans", "yoda"), false, "the blocked cannot reach the blocker");
    assert.equal(relations.canReach("yoda", "hans"), true, "a block is one-way");
    assert.equal(relations.canReach("vader", "yoda"), true);
    assert.equal(await relations.unblock("yoda", "hans"), true);
    assert.equal(await relations.unblock("yoda", "hans"), false, "no longer blocked");
    assert.equal(relations.hasBlocked("yoda", "hans"), false);
    assert.equal(relations.canReach("hans", "yoda"), true);
  });

  test("the N-th failed login in a row locks the user for the block duration", async () => {
    await using t = await make();
    const { guard } = t.store;
    assert.equal(await guard.recordFailure("yoda"), "try-again");
    assert.equal(await guard.recordFailure("yoda"), "try-again");
    assert.equal(guard.isLocked("yoda"), false);
    assert.equal(await guard.recordFailure("yoda"), "locked");
    assert.equal(guard.isLocked("yoda"), true);
    assert.equal(guard.isLocked("hans"), false, "others are not locked");
    t.clock.advance(9_999);
    assert.equal(guard.isLocked("yoda"), true);
    t.clock.advance(1);
    assert.equal(guard.isLocked("yoda"), false);
    // The lock reset the count: it takes N failures again.
    assert.equal(await guard.recordFailure("yoda"), "try-again");
  });

  test("a successful login forgives earlier failures", async () => {
    await using t = await make();
    const { guard } = t.store;
    await guard.recordFailure("hans");
    await guard.recordFailure("hans");
    await guard.recordSuccess("hans");
    assert.equal(await guard.recordFailure("hans"), "try-again");
    assert.equal(await guard.recordFailure("hans"), "try-again");
    assert.equal(await guard.recordFailure("hans"), "locked");
  });

  test("last-seen times are set when a user leaves, not when they arrive", async () => {
    await using t = await make();
    const { lastSeen } = t.store;
    const start = t.clock.now();
    lastSeen.arrived("yoda", start);
    assert.equal(lastSeen.times.has("yoda"), false);
    lastSeen.left("yoda", start + 5_000);
    assert.equal(lastSeen.times.get("yoda"), start + 5_000);
    lastSeen.arrived("yoda", start + 6_000);
    lastSeen.left("yoda", start + 9_000);
    assert.equal(lastSeen.times.get("yoda"), start + 9_000);
    assert.deepEqual([...lastSeen.times.keys()], ["yoda"]);
  });

  test("a kept board numbers posts from 1 and renumbers after a delete", async () => {
    await using t = await make({ config: { keepBoard: true } });
    const { board } = t.store;
    await t.store.start();
    const first = await board.post("yoda", "first");
    t.clock.advance(1_500);
    const second = await board.post("hans", "second");
    const third = await board.post("yoda", "third");
    assert.deepEqual([first.number, second.number, third.number], [1, 2, 3]);
    assert.equal(first.time % 1000, 0, "times are whole seconds");
    t.clock.advance(2_000);
    const { committed, ...edited } = await board.edit(3, third.time, "yoda", "third, edited");
    await committed;
    assert.deepEqual(edited, {
      author: "yoda",
      text: "third, edited",
      time: third.time + 2_000,
      edited: true,
      number: 3,
    });
    await assert.rejects(board.remove(1, first.time, "hans"), /Unauthorised to delete Message #1/);
    await assert.rejects(board.remove(1, second.time, "yoda"), /does not match Message #1/);
    await assert.rejects(board.remove(4, first.time, "yoda"), /Message #4 does not exist/);
    await board.remove(1, first.time, "yoda");
    assert.equal(board.size, 2);
    assert.deepEqual(board.since(0).map((m) => [m.number, m.text]), [
      [1, "second"],
      [2, "third, edited"],
    ]);
    assert.equal(
      t.file("messagelog.txt"),
      `1; ${formatTimestamp(second.time)}; hans; second; no\n` +
        `2; ${formatTimestamp(edited.time)}; yoda; third, edited; yes\n`,
    );
  });

  test("registering an account writes it to credentials.txt", async () => {
    await using t = await make();
    const { accounts } = t.store;
    const before = t.file("credentials.txt");
    await accounts.register("luke", "skywalker");
    const after = t.file("credentials.txt");
    assert.ok(after.startsWith(before), "the existing accounts are kept as they were");
    assert.match(after.slice(before.length), /^luke scrypt\$1024\$8\$1\$\S+\n$/);
    assert.equal(await accounts.check("luke", "skywalker"), true);
    assert.equal(await accounts.check("luke", "vader"), false);
    await assert.rejects(accounts.register("luke", "again"), /Username luke is already taken/);
    assert.equal(t.file("credentials.txt"), after);
  });
}
