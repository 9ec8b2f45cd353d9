/** Who has blocked whom, in lib/server/relations.ts. */
import assert from "node:assert/strict";
import { Relations } from "../../lib/server/relations.ts";

Deno.test("Relations start with nobody blocked", () => {
  const relations = new Relations();
  assert.equal(relations.hasBlocked("yoda", "hans"), false);
  assert.equal(relations.canReach("hans", "yoda"), true);
});

Deno.test("Relations.block() returns true once, then false", async () => {
  const relations = new Relations();
  assert.equal(await relations.block("yoda", "hans"), true);
  assert.equal(await relations.block("yoda", "hans"), false);
  assert.equal(relations.hasBlocked("yoda", "hans"), true);
});

Deno.test("Relations blocks are one-way", async () => {
  const relations = new Relations();
  await relations.block("yoda", "hans");
  assert.equal(relations.canReach("hans", "yoda"), false);
  assert.equal(relations.canReach("yoda", "hans"), true);
  assert.equal(relations.hasBlocked("hans", "yoda"), false);
});

Deno.test("Relations blocks affect only the blocked user", async () => {
  const relations = new Relations();
  await relations.block("yoda", "hans");
  assert.equal(relations.canReach("leia", "yoda"), true);
  assert.equal(relations.canReach("Hans", "yoda"), true);
});

Deno.test("Relations.unblock() undoes a block and reports whether there was one", async () => {
  const relations = new Relations();
  assert.equal(await relations.unblock("yoda", "hans"), false);
  await relations.block("yoda", "hans");
  await relations.block("yoda", "leia");
  assert.equal(await relations.unblock("yoda", "hans"), true);
  assert.equal(await relations.unblock("yoda", "hans"), false);
  assert.equal(relations.canReach("hans", "yoda"), true);
  assert.equal(relations.canReach("leia", "yoda"), false);
});

Deno.test("Relations keep mutual blocks independent", async () => {
  const relations = new Relations();
  await relations.block("yoda", "hans");
  await relations.block("hans", "yoda");
  await relations.unblock("yoda", "hans");
  assert.equal(relations.canReach("hans", "yoda"), true);
  assert.equal(relations.canReach("yoda", "hans"), false);
});

Deno.test("Relations treat names like __proto__ as ordinary names", async () => {
  const relations = new Relations();
  assert.equal(relations.hasBlocked("__proto__", "constructor"), false);
  await relations.block("__proto__", "constructor");
  assert.equal(relations.canReach("constructor", "__proto__"), false);
  assert.equal(relations.canReach("constructor", "yoda"), true);
});
