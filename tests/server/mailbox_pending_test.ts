/**
 * Offline messages still being written down (lib/server/mailbox.ts): they count toward the limits
 * at once, but no login takes them until they are written; one whose write fails is gone and its
 * sender is told. Commits are settled by hand through a gated storage.
 */
import assert from "node:assert/strict";
import { Mailbox } from "../../lib/server/mailbox.ts";
import { CommandError } from "../../lib/shared/errors.ts";
import { ahead, gatedStorage, promptly } from "../../testing/gated_storage.ts";
import { loggedIn, settle, startServer } from "../../testing/server_fixture.ts";

const STORE_FAILED = "The server could not store the message; try again later.";

/** The lines of the direct messages a client has been shown. */
function messages(client: { events: Array<{ kind: string; lines: string[] }> }): string[] {
  return client.events.filter((event) => event.kind === "message").flatMap((event) => event.lines);
}

Deno.test("Mailbox.take() leaves a message being written down, and hands it out once written", async () => {
  const journal = gatedStorage();
  const mailbox = new Mailbox(10, { journal });
  const first = mailbox.put("vader", { from: "yoda", line: "yoda: one" });
  const [one] = await journal.waitHeld(1);
  one!.commit();
  await first;
  const second = mailbox.put("vader", { from: "hans", line: "hans: two" });
  const [two] = await journal.waitHeld(1);
  assert.equal(mailbox.count("vader"), 2);
  assert.deepEqual(mailbox.take("vader").map((message) => message.line), ["yoda: one"]);
  // The pending one stays, counted, for the next take.
  assert.equal(mailbox.count("vader"), 1);
  assert.deepEqual(mailbox.take("vader"), []);
  two!.commit();
  await second;
  assert.deepEqual(mailbox.take("vader").map((message) => message.line), ["hans: two"]);
  assert.equal(mailbox.count("vader"), 0);
});

Deno.test("Mailbox.put() whose write fails removes the message and rejects, even after a take", async () => {
  const journal = gatedStorage();
  const mailbox = new Mailbox(10, { journal });
  const put = mailbox.put("vader", { from: "yoda", line: "yoda: doomed" });
  const [held] = await journal.waitHeld(1);
  assert.deepEqual(mailbox.take("vader"), []);
  held!.fail();
  await assert.rejects(put, (error: unknown) => {
    assert.ok(error instanceof CommandError);
    assert.equal(error.message, STORE_FAILED);
    return true;
  });
  assert.equal(mailbox.count("vader"), 0);
  assert.deepEqual(mailbox.take("vader"), []);
});

Deno.test("Mailbox counts a message being written toward the queue and the sender's share", async () => {
  const journal = gatedStorage();
  const mailbox = new Mailbox(3, { journal, perSender: 1 });
  const pending = mailbox.put("vader", { from: "yoda", line: "yoda: one" });
  await journal.waitHeld(1);
  await assert.rejects(
    promptly(mailbox.put("vader", { from: "yoda", line: "yoda: two" })),
    /You already have 1 message waiting for vader/,
  );
  const others = [
    mailbox.put("vader", { from: "hans", line: "hans: one" }),
    mailbox.put("vader", { from: "obiwan", line: "obiwan: one" }),
  ];
  await journal.waitHeld(3);
  await assert.rejects(
    promptly(mailbox.put("vader", { from: "leia", line: "leia: one" })),
    /vader has too many messages waiting \(3\)/,
  );
  // A failed write frees its slot.
  journal.held[0]!.fail();
  await assert.rejects(pending, CommandError);
  const retry = mailbox.put("vader", { from: "yoda", line: "yoda: again" });
  await journal.waitHeld(3);
  for (const held of [...journal.held]) held.commit();
  await Promise.all([retry, ...others]);
  assert.deepEqual(mailbox.take("vader").map((message) => message.line), [
    "hans: one",
    "obiwan: one",
    "yoda: again",
  ]);
});

Deno.test("a login while an offline message is being written does not get it; the next login does", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage });
  const yoda = await loggedIn(test, "yoda", "jedi");
  const sent = ahead(yoda.cmd("message vader written slowly"));
  const [held] = await storage.waitHeld(1);
  const mail = held!.change;
  assert.equal(mail.t, "mail");
  const id = mail.t === "mail" ? mail.mail.id : 0;
  const early = await loggedIn(test, "vader", "sithlord");
  await settle();
  assert.deepEqual(messages(early), []);
  assert.equal(test.server.state.store.mailbox.count("vader"), 1);
  held!.commit();
  assert.deepEqual((await sent).lines, [
    "vader is offline; the message will be delivered when they log in.",
  ]);
  await settle();
  // Written now, but it waits for a login: the session that missed it is not sent it.
  assert.deepEqual(messages(early), []);
  const deliveredIds = () =>
    storage.noted.flatMap((change) => change.t === "delivered" ? change.ids : []);
  assert.equal(deliveredIds().includes(id), false);
  assert.equal((await early.cmd("OUT")).ok, true);
  const later = await loggedIn(test, "vader", "sithlord");
  await later.waitFor("yoda: written slowly");
  await settle();
  assert.deepEqual(messages(later), ["yoda: written slowly"]);
  assert.ok(deliveredIds().includes(id), "its delivery is written down");
  assert.equal(test.server.state.store.mailbox.count("vader"), 0);
});

Deno.test("a message being written fills its slot: others are refused until its write fails", async () => {
  const storage = gatedStorage();
  await using test = await startServer({ storage, mailboxLimit: 1 });
  const yoda = await loggedIn(test, "yoda", "jedi");
  const hans = await loggedIn(test, "hans", "falcon");
  const first = ahead(yoda.cmd("message vader first"));
  const [held] = await storage.waitHeld(1);
  assert.deepEqual(await promptly(hans.cmd("message vader second")), {
    ok: false,
    code: "failed",
    lines: ["vader has too many messages waiting (1); try again after they log in."],
  });
  held!.fail();
  assert.deepEqual((await first).lines, [STORE_FAILED]);
  const retry = ahead(hans.cmd("message vader second again"));
  const [next] = await storage.waitHeld(1);
  next!.commit();
  assert.equal((await retry).ok, true);
  const vader = await loggedIn(test, "vader", "sithlord");
  await vader.waitFor("hans: second again");
  await settle();
  assert.deepEqual(messages(vader), ["hans: second again"]);
});
