/** What both command-line parsers share: exits, ports, seconds and negative-looking arguments. */
import assert from "node:assert/strict";
import {
  hideNegatives,
  isExit,
  parsePort,
  parseSeconds,
  unhide,
  usageExit,
} from "../../lib/shared/cli.ts";

Deno.test("isExit() tells a parse that ends the program from a config", () => {
  assert.equal(isExit({ exit: 0 }), true);
  assert.equal(isExit({ serverHost: "localhost", downloadDir: "." }), false);
});

Deno.test("parsePort() reads 0 to 65535 and nothing else", () => {
  assert.deepEqual(["0", "8000", "65535"].map(parsePort), [0, 8000, 65535]);
  for (const bad of [undefined, "", "65536", "-1", "80a", "123456", " 80", "8.0"]) {
    assert.equal(parsePort(bad), undefined, String(bad));
  }
});

Deno.test("parseSeconds() reads whole and fractional seconds, with a fallback when absent", () => {
  assert.equal(parseSeconds(undefined, 10), 10);
  assert.equal(parseSeconds("0", 10), 0);
  assert.equal(parseSeconds("2.5", 10), 2.5);
  for (const bad of ["", "-1", "1e3", "ten", ".5"]) assert.equal(parseSeconds(bad, 10), undefined);
});

Deno.test("usageExit() exits 2 with the problem, then the usage, on stderr", () => {
  assert.deepEqual(usageExit("Usage: x", "Bad thing"), {
    exit: 2,
    stderr: "Bad thing\nUsage: x\n",
  });
});

Deno.test("hideNegatives() keeps negative numbers from reading as options, unhide() restores them", () => {
  const hidden = hideNegatives(["-1", "--quiet", "5", "-x"]);
  assert.equal(hidden[1], "--quiet");
  assert.equal(hidden[3], "-x");
  assert.notEqual(hidden[0], "-1");
  assert.deepEqual(unhide(hidden), ["-1", "--quiet", "5", "-x"]);
});
