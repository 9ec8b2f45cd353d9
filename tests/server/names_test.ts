/** The look-alike rule for new usernames (lib/server/names.ts): tables of names, then at login. */
import assert from "node:assert/strict";
import { lookAlikeProblem, scriptOf, scriptsOf } from "../../lib/server/names.ts";
import { CREDENTIALS, startServer } from "../../testing/server_fixture.ts";

const ACCEPTED: [string, string][] = [
  ["plain ASCII", "yoda"],
  ["digits, _, - and .", "r2-d2_v1.0"],
  ["Latin with a precomposed umlaut", "Hans_Müller"],
  ["Latin with a combining umlaut (NFC composes it)", "Hans_Mu\u0308ller"],
  ["Chinese", "张伟"],
  ["Japanese kanji", "山田太郎"],
  ["Japanese kana with the prolonged sound mark", "ラーメン"],
  ["Hiragana with Latin", "やまだ_taro"],
  ["Han with Latin", "李小龍Bruce"],
  ["Han with Bopomofo", "ㄅㄆ李"],
  ["Korean", "김철수"],
  ["Hangul with Latin", "김Lee"],
  ["Greek only", "Ωμέγα"],
  ["Cyrillic only", "Дарт_Вейдер"],
  ["Arabic with its own digits", "محمد٣"],
  ["Devanagari", "अर्जुन"],
];

const REFUSED: [string, string, RegExp][] = [
  [
    "a control character",
    "yo\u0007da",
    /^Username must not contain control characters \(U\+0007\)$/,
  ],
  ["DEL", "yoda\u007f", /control characters \(U\+007F\)/],
  [
    "a zero-width space",
    "yo\u200bda",
    /^Username must not contain invisible characters \(U\+200B\)$/,
  ],
  ["a zero-width non-joiner", "yo\u200cda", /invisible characters \(U\+200C\)/],
  ["a zero-width joiner", "yo\u200dda", /invisible characters \(U\+200D\)/],
  ["a word joiner", "yo\u2060da", /invisible characters \(U\+2060\)/],
  ["a byte order mark", "\ufeffyoda", /invisible characters \(U\+FEFF\)/],
  ["a soft hyphen", "yo\u00adda", /invisible characters \(U\+00AD\)/],
  ["a variation selector", "yoda\ufe0f", /invisible characters \(U\+FE0F\)/],
  ["a Hangul filler (default-ignorable)", "yoda\u3164", /invisible characters \(U\+3164\)/],
  [
    "a left-to-right mark",
    "yoda\u200e",
    /^Username must not contain bidirectional controls \(U\+200E\)$/,
  ],
  ["a right-to-left mark", "yoda\u200f", /bidirectional controls \(U\+200F\)/],
  ["a right-to-left override", "ma\u202ellory", /bidirectional controls \(U\+202E\)/],
  ["a left-to-right embedding", "\u202ayoda", /bidirectional controls \(U\+202A\)/],
  ["a right-to-left isolate", "yoda\u2067", /bidirectional controls \(U\+2067\)/],
  ["a pop directional isolate", "yoda\u2069", /bidirectional controls \(U\+2069\)/],
  ["an Arabic letter mark", "yoda\u061c", /bidirectional controls \(U\+061C\)/],
  [
    "fullwidth letters",
    "ｙｏｄａ",
    /^Username must not contain fullwidth or compatibility characters \(U\+FF59; type y instead\)$/,
  ],
  ["a fullwidth digit", "yoda１", /compatibility characters \(U\+FF11; type 1 instead\)/],
  ["a ligature", "ﬁsh", /compatibility characters \(U\+FB01; type fi instead\)/],
  ["a superscript", "x²", /compatibility characters \(U\+00B2; type 2 instead\)/],
  ["a mathematical bold letter", "𝐲oda", /compatibility characters \(U\+1D432; type y instead\)/],
  ["halfwidth katakana", "ﾔﾏﾀﾞ", /compatibility characters \(U\+FF94/],
  [
    "Latin and Cyrillic (a Cyrillic о)",
    "yоda",
    /^Username must not mix scripts \(Latin and Cyrillic\)$/,
  ],
  ["Greek and Latin", "Ωmega", /^Username must not mix scripts \(Greek and Latin\)$/],
  ["Latin and Arabic-Indic digits", "yoda٣", /mix scripts \(Latin and Arabic\)/],
  ["three scripts", "yоdαx", /mix scripts \(Latin, Cyrillic and Greek\)/],
  ["Hangul and Hiragana", "김やま", /mix scripts \(Hangul and Hiragana\)/],
  ["Hangul and Katakana", "김ヤマ", /mix scripts \(Hangul and Katakana\)/],
  ["Bopomofo and Hiragana", "ㄅや", /mix scripts \(Bopomofo and Hiragana\)/],
  ["Han, Hangul and Bopomofo", "李김ㄅ", /mix scripts \(Han, Hangul and Bopomofo\)/],
  [
    "punctuation",
    "yoda!",
    /^Username may contain only letters, digits, _, - and \. \(not "!", U\+0021\)$/,
  ],
  ["a symbol", "yoda★", /only letters, digits, _, - and \. \(not "★", U\+2605\)/],
  ["an emoji", "yoda😀", /only letters, digits/],
  ["a space", "yo da", /only letters, digits/],
  ["a no-break space", "yo\u00a0da", /compatibility characters \(U\+00A0\)$/],
  ["a private-use character", "yoda\ue000", /only letters, digits/],
  ["an unassigned code point", "yoda\u0378", /only letters, digits/],
  [
    "a leading combining mark",
    "\u0301yoda",
    /^Username must not start with a combining mark \(U\+0301\)$/,
  ],
];

for (const [what, name] of ACCEPTED) {
  Deno.test(`lookAlikeProblem() accepts ${what}: ${name}`, () => {
    assert.equal(lookAlikeProblem(name), undefined);
  });
}

for (const [what, name, expected] of REFUSED) {
  Deno.test(`lookAlikeProblem() refuses ${what}`, () => {
    const problem = lookAlikeProblem(name);
    assert.ok(problem !== undefined, `${JSON.stringify(name)} was accepted`);
    assert.match(problem, expected);
  });
}

Deno.test("scriptOf() names a character's script; scriptsOf() leaves out Common and Inherited", () => {
  assert.deepEqual(
    ["y", "о", "Ω", "李", "や", "ヤ", "김", "ㄅ", "1", "_", "\u0301"].map(scriptOf),
    [
      "Latin",
      "Cyrillic",
      "Greek",
      "Han",
      "Hiragana",
      "Katakana",
      "Hangul",
      "Bopomofo",
      "Common",
      "Common",
      "Inherited",
    ],
  );
  assert.deepEqual(scriptsOf("r2-d2_é.x"), ["Latin"]);
  assert.deepEqual(scriptsOf("1_2-3"), []);
});

Deno.test("every letter, mark and digit of Unicode has a script the rule knows", () => {
  const counted = /^[\p{L}\p{M}\p{Nd}]$/u;
  const unknown: string[] = [];
  for (let cp = 0; cp <= 0x3ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const char = String.fromCodePoint(cp);
    if (counted.test(char) && scriptOf(char) === "Unknown") unknown.push(cp.toString(16));
  }
  assert.deepEqual(unknown.slice(0, 10), []);
});

Deno.test("registration refuses a look-alike name and says why; accounts already on file still log in", async () => {
  await using test = await startServer({ allowRegister: true });
  test.files.contents.set("credentials.txt", `${CREDENTIALS}yоda_old ancient\n`);
  const client = test.connect();
  await client.hello();
  const refused = await client.link.request({ t: "user", name: "yоda" });
  assert.deepEqual([refused.ok, refused.code, refused.lines], [
    false,
    "usage",
    ["Username must not mix scripts (Latin and Cyrillic)."],
  ]);
  const zeroWidth = await client.link.request({ t: "user", name: "yo\u200bda" });
  assert.deepEqual(zeroWidth.lines, ["Username must not contain invisible characters (U+200B)."]);
  const fullwidth = await client.link.request({ t: "user", name: "ｙｏｄａ" });
  assert.deepEqual(fullwidth.lines, [
    "Username must not contain fullwidth or compatibility characters (U+FF59; type y instead).",
  ]);
  // NFC first: a decomposed ü registers as the composed one.
  const asked = await client.link.request({ t: "user", name: "Hans_Mu\u0308ller" });
  assert.deepEqual(asked.lines, ["This is a new user. Enter a password:"]);
  assert.equal((await client.link.request({ t: "pass", password: "pw", udpPort: 1 })).ok, true);
  assert.match(test.file("credentials.txt"), /^Hans_Müller scrypt\$/m);
  // An existing account whose name the rule would refuse keeps working.
  assert.equal((await test.connect().login("yоda_old", "ancient")).ok, true);
  // Without registration the rule does not apply: an unknown name is just unknown.
  await using closed = await startServer();
  assert.deepEqual((await closed.connect().login("yоda", "x")).lines, ["Username does not exist"]);
});
