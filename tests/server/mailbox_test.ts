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
