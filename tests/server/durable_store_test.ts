/**
 * What a Store keeps across a restart (close it and open another on the same data) and how its
 * group commits succeed and fail, run against each durable storage: toom.db and PostgreSQL. What
 * only one of them does is in sqlite_store_test.ts and postgres_store_test.ts; the rules every
 * storage follows, memory included, are in store_contract_test.ts.
 */
import assert from "node:assert/strict";
import { StorageError } from "../../lib/server/store/journal.ts";
import { FakeClock } from "../../lib/shared/clock.ts";
import { MemoryLogger } from "../../lib/shared/logger.ts";
import { formatTimestamp } from "../../lib/shared/timestamp.ts";
import { postgresTests } from "../../testing/postgres.ts";
import { CREDENTIALS } from "../../testing/server_fixture.ts";
import { DURABLE_STORAGES, sqliteTests } from "../../testing/store_fixture.ts";

sqliteTests("Restart tests on toom.db");
postgresTests("Restart tests on PostgreSQL");

/** Lets a commit scheduled for when the event loop is idle start. */
function idle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

for (const { name, ignore, duplicate, failedWrite, make } of DURABLE_STORAGES) {
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({ name: `Store on ${name} storage: ${title}`, ignore, fn });

  test("offline messages not yet delivered are back after a restart, in order, once", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const first = await place.open({ clock });
    const { mailbox } = first.store;
    await mailbox.put("yoda", { from: "hans", line: "delivered 1" });
    await mailbox.put("yoda", { from: "hans", line: "delivered 2" });
    await mailbox.delivered(mailbox.take("yoda"));
    await mailbox.put("yoda", { from: "hans", line: "c", ref: "ref-c" });
    await mailbox.put("obiwan", { from: "yoda", line: "for obiwan" });
    await mailbox.put("yoda", { from: "vader", line: "d" });
    // Taken by a connection that died before it had them: never delivered.
    const lost = mailbox.take("yoda");
    await mailbox.put("yoda", { from: "hans", line: "e" });
    await first.close();

    const second = await place.open({ clock });
    assert.deepEqual(second.storage.contents.mail.map((m) => [m.to, m.line]), [
      ["yoda", "c"],
      ["obiwan", "for obiwan"],
      ["yoda", "d"],
      ["yoda", "e"],
    ]);
    const back = second.store.mailbox.take("yoda");
    assert.deepEqual(back.map((m) => m.line), ["c", "d", "e"]);
    assert.deepEqual(back.slice(0, 2), lost, "the same ids, senders and refs");
    assert.equal(second.store.mailbox.countFrom("obiwan", "yoda"), 1);
    // New messages get fresh ids (a reused one would break the commit).
    await second.store.mailbox.put("yoda", { from: "hans", line: "f" });
    await second.store.mailbox.delivered(back);
    await second.close();

    const third = await place.open({ clock });
    assert.deepEqual(third.store.mailbox.take("yoda").map((m) => m.line), ["f"]);
    assert.equal(third.store.mailbox.countFrom("obiwan", "yoda"), 1);
  });

  test("blocks, failure counts, lockouts and last-seen times survive a restart", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const first = await place.open({ clock });
    const { relations, guard, lastSeen } = first.store;
    await relations.block("yoda", "hans");
    await relations.block("obiwan", "vader");
    await relations.unblock("obiwan", "vader");
    for (let i = 0; i < 3; i++) await guard.recordFailure("vader");
    await guard.recordFailure("hans");
    await guard.recordFailure("hans");
    await guard.recordFailure("obiwan");
    await guard.recordSuccess("obiwan");
    lastSeen.left("leia", clock.now() - 60_000); // noted, not yet committed: close() commits it
    await first.close();

    clock.advance(5_000);
    const after = (await place.open({ clock })).store;
    assert.equal(after.relations.hasBlocked("yoda", "hans"), true);
    assert.equal(after.relations.canReach("hans", "yoda"), false);
    assert.equal(after.relations.hasBlocked("obiwan", "vader"), false);
    assert.equal(after.guard.isLocked("vader"), true, "still locked on the same clock");
    assert.equal(after.guard.isLocked("hans"), false);
    assert.equal(await after.guard.recordFailure("hans"), "locked", "two failures were kept");
    assert.equal(await after.guard.recordFailure("obiwan"), "try-again", "a success forgave");
    assert.equal(after.lastSeen.times.get("leia"), clock.now() - 65_000);
    clock.advance(5_000);
    assert.equal(after.guard.isLocked("vader"), false, "the lockout ends when it was due");
  });

  test("a kept board survives a restart and start() writes it renumbered", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const config = { keepBoard: true };
    const first = await place.open({ clock, config });
    await first.store.start();
    const one = await first.store.board.post("yoda", "one");
    const two = await first.store.board.post("hans", "two");
    clock.advance(3_000);
    await first.store.board.post("vader", "three");
    const edited = await first.store.board.edit(3, clock.now(), "vader", "three, edited");
    await edited.committed;
    await first.store.board.remove(2, two.time, "hans");
    await first.close();

    const second = await place.open({ clock, config });
    assert.equal(second.file("messagelog.txt"), "", "fresh files");
    await second.store.start();
    assert.equal(
      second.file("messagelog.txt"),
      `1; ${formatTimestamp(one.time)}; yoda; one; no\n` +
        `2; ${formatTimestamp(edited.time)}; vader; three, edited; yes\n`,
    );
    const four = await second.store.board.post("obiwan", "four");
    assert.equal(four.number, 3);
    assert.deepEqual(second.store.board.since(0).map((m) => m.text), [
      "one",
      "three, edited",
      "four",
    ]);
  });

  test("without --keep-board the board starts empty and forgets a board kept earlier", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const kept = await place.open({ clock, config: { keepBoard: true } });
    await kept.store.board.post("yoda", "kept");
    await kept.close();

    const plain = await place.open({ clock });
    assert.equal(plain.store.board.size, 0);
    await plain.store.start();
    await plain.store.board.post("hans", "not kept");
    assert.equal(plain.file("messagelog.txt").split("\n")[0]!.startsWith("1; "), true);
    await plain.close();

    const again = await place.open({ clock, config: { keepBoard: true } });
    assert.deepEqual(again.storage.contents.board, []);
    assert.equal(again.store.board.size, 0);
  });

  test("users a killed run had online are last seen when it was last alive", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const start = clock.now();
    const first = await place.open({ clock });
    first.store.lastSeen.arrived("yoda", start);
    first.store.lastSeen.arrived("hans", start);
    clock.advance(1_000);
    first.store.lastSeen.left("hans", clock.now());
    await idle();
    clock.advance(4_000);
    await first.store.relations.block("vader", "obiwan"); // the last commit: alive at start + 5 s
    // Killed: yoda never left.
    await first.close();

    clock.advance(60_000);
    const second = await place.open({ clock });
    assert.equal(second.store.lastSeen.times.get("yoda"), start + 5_000);
    assert.equal(second.store.lastSeen.times.get("hans"), start + 1_000, "hans did leave");
    assert.deepEqual(await place.rows("SELECT * FROM online"), []);
    await second.close();

    clock.advance(60_000);
    const third = await place.open({ clock });
    assert.equal(third.store.lastSeen.times.get("yoda"), start + 5_000, "settled once");
  });

  test("start() writes to credentials.txt an account change a killed run never wrote", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const first = await place.open({ clock });
    await first.storage.record({ t: "account", user: "luke", secret: "skywalker" });
    await first.storage.record({ t: "account", user: "yoda", secret: "newjedi" });
    await first.close();

    const second = await place.open({ clock });
    assert.equal(second.file("credentials.txt"), CREDENTIALS);
    await second.store.start();
    assert.equal(
      second.file("credentials.txt"),
      CREDENTIALS.replace("yoda jedi", "yoda newjedi") + "luke skywalker\n",
    );
    assert.deepEqual(second.logger.lines, ["Wrote 2 account change(s) to credentials.txt"]);
    assert.equal(await second.store.accounts.check("luke", "skywalker"), true);
    await second.close();

    const third = await place.open({ clock });
    assert.deepEqual(third.storage.contents.accounts, [], "written, so no longer pending");
    await third.store.start();
    assert.deepEqual(third.logger.lines, []);
  });

  test("a registration leaves no account change pending", async () => {
    await using place = await make();
    const first = await place.open();
    await first.store.accounts.register("luke", "skywalker");
    await first.close();
    assert.deepEqual((await place.open()).storage.contents.accounts, []);
  });

  test("changes recorded in one turn all resolve and apply in the order recorded", async () => {
    await using place = await make();
    const first = await place.open();
    const storage = first.storage;
    const recorded = [];
    for (let id = 1; id <= 200; id++) {
      const mail = { id, to: "yoda", from: "hans", line: `m${id}`, ref: `r${id}`, time: id };
      recorded.push(storage.record({ t: "mail", mail }));
    }
    recorded.push(storage.record({ t: "block", by: "yoda", other: "hans" }));
    recorded.push(storage.record({ t: "unblock", by: "yoda", other: "hans" }));
    recorded.push(storage.record({ t: "unblock", by: "obiwan", other: "vader" }));
    recorded.push(storage.record({ t: "block", by: "obiwan", other: "vader" }));
    recorded.push(storage.record({ t: "delivered", ids: [1, 2] }));
    await Promise.all(recorded);
    await first.close();

    const contents = (await place.open()).storage.contents;
    assert.equal(contents.mail.length, 198);
    assert.deepEqual(contents.mail.slice(0, 2).map((m) => m.id), [3, 4]);
    assert.deepEqual(contents.blocks, [{ by: "obiwan", other: "vader" }]);
  });

  test("a commit that fails rejects every change in it and keeps none of them", async () => {
    await using place = await make();
    const logger = new MemoryLogger();
    const storage = await place.storage({ clock: new FakeClock(), logger });
    try {
      const mail = { id: 7, to: "yoda", from: "hans", line: "once", ref: "r", time: 0 };
      await storage.record({ t: "mail", mail });
      const block = storage.record({ t: "block", by: "yoda", other: "vader" });
      const duplicated = storage.record({ t: "mail", mail: { ...mail, line: "twice" } });
      await assert.rejects(block, duplicate);
      await assert.rejects(duplicated, duplicate);
      assert.equal(logger.warnings.length, 1);
      assert.match(logger.warnings[0]!, failedWrite);
      // The store carries on: the next commit goes through.
      await storage.record({ t: "block", by: "obiwan", other: "vader" });
    } finally {
      await storage.close();
    }
    assert.deepEqual(await place.rows("SELECT by_user, other FROM blocks"), [
      { by_user: "obiwan", other: "vader" },
    ]);
    assert.deepEqual((await place.rows("SELECT line FROM mail")).map((r) => r.line), ["once"]);
    const contents = (await place.open()).storage.contents;
    assert.deepEqual(contents.blocks, [{ by: "obiwan", other: "vader" }]);
    assert.deepEqual(contents.mail.map((m) => m.line), ["once"]);
  });

  test("a failed commit is told to the operator, at most once a minute", async () => {
    await using place = await make();
    const clock = new FakeClock();
    const logger = new MemoryLogger();
    const storage = await place.storage({ clock, logger });
    try {
      const mail = { id: 1, to: "yoda", from: "hans", line: "once", ref: "r", time: 0 };
      await storage.record({ t: "mail", mail });
      await assert.rejects(storage.record({ t: "mail", mail }));
      await assert.rejects(storage.record({ t: "mail", mail }));
      assert.equal(logger.warnings.length, 1);
      assert.match(logger.warnings[0]!, failedWrite);
      clock.advance(60_000);
      await assert.rejects(storage.record({ t: "mail", mail }));
      assert.equal(logger.warnings.length, 2);
    } finally {
      await storage.close();
    }
  });

  test("close() commits what is pending; a change recorded after it is rejected", async () => {
    await using place = await make();
    const first = await place.open();
    const pending = first.storage.record({ t: "block", by: "yoda", other: "hans" });
    await first.close();
    await pending;
    await assert.rejects(
      first.storage.record({ t: "block", by: "yoda", other: "vader" }),
      (error: unknown) => error instanceof StorageError && /is closed/.test(error.message),
    );
    assert.deepEqual((await place.open()).storage.contents.blocks, [{ by: "yoda", other: "hans" }]);
  });
}
