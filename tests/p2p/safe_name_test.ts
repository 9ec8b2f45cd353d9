/** Received-file names of lib/p2p/safe_name.ts: sanitising, numbering, and never overwriting. */
import assert from "node:assert/strict";
import {
  moveIntoPlace,
  numberedName,
  receivedFileName,
  safeBaseName,
} from "../../lib/p2p/safe_name.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const CAN_USE_FILES = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";

const SAFE_NAMES: [string, string][] = [
  ["notes.txt", "notes.txt"],
  ["../../etc/passwd", "passwd"],
  ["..\\..\\Windows\\system.ini", "system.ini"],
  ["/absolute/path/report.pdf", "report.pdf"],
  ["..", "file"],
  [".", "file"],
  ["", "file"],
  ["dir/", "file"],
  [".bashrc", "bashrc"],
  ["...hidden", "hidden"],
  ["bad\u0000name\n.txt", "bad_name_.txt"],
  ['a<b>c:d|e?f*g"h', "a_b_c_d_e_f_g_h"],
  ["  spaced  ", "spaced"],
  ["ünïcödé ✨.md", "ünïcödé ✨.md"],
  ["vader_\u202etxt.exe", "vader__txt.exe"],
  ["zero\u200bwidth\ufeff.txt", "zero_width_.txt"],
  ["clear\u001b[2J.txt", "clear_[2J.txt"],
  ["my notes.txt", "my notes.txt"],
];

for (const [input, expected] of SAFE_NAMES) {
  Deno.test(`safeBaseName() reduces ${JSON.stringify(input)} to ${JSON.stringify(expected)}`, () => {
    assert.equal(safeBaseName(input), expected);
  });
}

Deno.test("safeBaseName() shortens very long names and keeps the extension", () => {
  const name = safeBaseName("x".repeat(1000) + ".txt");
  assert.ok(name.length <= 200);
  assert.ok(name.endsWith(".txt"));
});

Deno.test("receivedFileName() prefixes the sender and sanitises both parts", () => {
  assert.equal(receivedFileName("yoda", "notes.txt"), "yoda_notes.txt");
  assert.equal(receivedFileName("../yoda", "../../notes.txt"), "yoda_notes.txt");
  assert.equal(receivedFileName("ma\u202ellory", "notes.txt"), "ma_llory_notes.txt");
});

const NUMBERED: [string, number, string][] = [
  ["yoda_notes.txt", 0, "yoda_notes.txt"],
  ["yoda_notes.txt", 1, "yoda_notes-1.txt"],
  ["yoda_notes.txt", 2, "yoda_notes-2.txt"],
  ["yoda_README", 3, "yoda_README-3"],
  ["yoda_a.tar.gz", 1, "yoda_a.tar-1.gz"],
];

for (const [name, n, expected] of NUMBERED) {
  Deno.test(`numberedName() makes candidate ${n} of ${name} ${expected}`, () => {
    assert.equal(numberedName(name, n), expected);
  });
}

Deno.test({
  name: "moveIntoPlace() never overwrites and picks the next free numbered name",
  ignore: !CAN_USE_FILES,
  fn: async () => {
    await using temp = await tempDir("p2p_names_");
    const dir = temp.path;
    await Deno.writeTextFile(`${dir}/yoda_notes.txt`, "original");
    await Deno.writeTextFile(`${dir}/yoda_notes-1.txt`, "first copy");
    await Deno.writeTextFile(`${dir}/.tmp`, "new");
    const saved = await moveIntoPlace(`${dir}/.tmp`, dir, "yoda_notes.txt");
    assert.equal(saved, `${dir}/yoda_notes-2.txt`);
    assert.equal(await Deno.readTextFile(`${dir}/yoda_notes.txt`), "original");
    assert.equal(await Deno.readTextFile(`${dir}/yoda_notes-1.txt`), "first copy");
    assert.equal(await Deno.readTextFile(saved), "new");
    await assert.rejects(Deno.stat(`${dir}/.tmp`));
  },
});
