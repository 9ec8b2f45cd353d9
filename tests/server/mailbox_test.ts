/** The offline mailbox of lib/server/mailbox.ts: per-recipient queues with a limit. */
import assert from "node:assert/strict";
import { CommandError } from "../../lib/shared/errors.ts";
import { Mailbox } from "../../lib/server/mailbox.ts";

Deno.test("Mailbox.take() returns nothing for someone with no mail", () => {
  const mailbox = new Mailbox(10);
  assert.deepEqual(mailbox.take("yoda"), []);
  assert.equal(mailbox.count("yoda"), 0);
});

Deno.test("Mailbox.take() returns messages oldest first and empties the queue", () => {
  const mailbox = new Mailbox(10);
  mailbox.put("yoda", { from: "hans", line: "hans: one" });
  mailbox.put("yoda", { from: "leia", line: "leia: two" });
  mailbox.put("yoda", { from: "hans", line: "hans: three" });
  assert.equal(mailbox.count("yoda"), 3);
  assert.deepEqual(mailbox.take("yoda"), [
    { from: "hans", line: "hans: one" },
    { from: "leia", line: "leia: two" },
    { from: "hans", line: "hans: three" },
  ]);
  assert.equal(mailbox.count("yoda"), 0);
  assert.deepEqual(mailbox.take("yoda"), []);
});

Deno.test("Mailbox keeps a queue per recipient", () => {
  const mailbox = new Mailbox(10);
  mailbox.put("yoda", { from: "hans", line: "to yoda" });
  mailbox.put("leia", { from: "hans", line: "to leia" });
  assert.deepEqual(mailbox.take("leia"), [{ from: "hans", line: "to leia" }]);
  assert.equal(mailbox.count("yoda"), 1);
});

Deno.test("Mailbox.put() refuses a message once the recipient's queue is full", () => {
  const mailbox = new Mailbox(2);
  mailbox.put("yoda", { from: "hans", line: "1" });
  mailbox.put("yoda", { from: "hans", line: "2" });
  assert.throws(
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
  mailbox.put("leia", { from: "hans", line: "other recipients are unaffected" });
});

Deno.test("Mailbox.put() accepts messages again after take()", () => {
  const mailbox = new Mailbox(1);
  mailbox.put("yoda", { from: "hans", line: "1" });
  mailbox.take("yoda");
  mailbox.put("yoda", { from: "hans", line: "2" });
  assert.deepEqual(mailbox.take("yoda"), [{ from: "hans", line: "2" }]);
});

Deno.test("Mailbox with a limit of 0 stores nothing", () => {
  const mailbox = new Mailbox(0);
  assert.throws(() => mailbox.put("yoda", { from: "hans", line: "x" }), CommandError);
  assert.equal(mailbox.count("yoda"), 0);
});

Deno.test("Mailbox.put() holds one sender to a share of the recipient's slots (20 of 100 by default)", () => {
  const mailbox = new Mailbox(100);
  assert.equal(mailbox.perSender, 20);
  for (let i = 0; i < 20; i++) mailbox.put("vader", { from: "yoda", line: `yoda: ${i}` });
  assert.throws(
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
  mailbox.put("vader", { from: "hans", line: "hans: hello" });
  mailbox.put("leia", { from: "yoda", line: "yoda: hello" });
  assert.equal(mailbox.count("vader"), 21);
  // Once vader has read them, yoda's share is free again.
  mailbox.take("vader");
  mailbox.put("vader", { from: "yoda", line: "yoda: again" });
});

Deno.test("Mailbox shares are configurable, and five full shares fill a queue of 100", () => {
  const mailbox = new Mailbox(100);
  for (const from of ["a", "b", "c", "d", "e"]) {
    for (let i = 0; i < 20; i++) mailbox.put("vader", { from, line: `${from}: ${i}` });
  }
  assert.throws(
    () => mailbox.put("vader", { from: "f", line: "f: 1" }),
    /vader has too many messages waiting \(100\); try again after they log in\./,
  );
  const one = new Mailbox(10, { perSender: 1 });
  one.put("vader", { from: "yoda", line: "1" });
  assert.throws(
    () => one.put("vader", { from: "yoda", line: "2" }),
    /^CommandError: You already have 1 message waiting for vader; wait until they log in\.$/,
  );
});
