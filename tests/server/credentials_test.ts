/** The credentials file and passwords of lib/server/credentials.ts: parsing, hashing, checks. */
import assert from "node:assert/strict";
import {
  DEFAULT_HASH_COST,
  exposureWarning,
  hashClearPasswords,
  type HashCost,
  hashPassword,
  isHashed,
  normaliseName,
  parseCredentials,
  passwordProblem,
  setSecret,
  usernameProblem,
  verifyPassword,
} from "../../lib/server/credentials.ts";
import { hashCredentialsFile } from "../../lib/server/accounts.ts";
import { MemoryFiles } from "../../lib/server/files.ts";

/** Cheap enough that tests hash in milliseconds. */
const CHEAP: HashCost = { N: 1024, r: 8, p: 1 };

const SAMPLE = await Deno.readTextFile(new URL("./testdata/credentials.txt", import.meta.url))
  .catch(() => undefined);

Deno.test("parseCredentials() reads one account per line", () => {
  const { accounts, problems } = parseCredentials("yoda jedi*knight\nhans falcon*solo\n");
  assert.deepEqual(problems, []);
  assert.deepEqual([...accounts.values()], [
    { username: "yoda", secret: "jedi*knight", line: 1 },
    { username: "hans", secret: "falcon*solo", line: 2 },
  ]);
});

Deno.test("parseCredentials() reads a file with no trailing newline", () => {
  const { accounts, problems } = parseCredentials("yoda jedi*knight");
  assert.deepEqual(problems, []);
  assert.equal(accounts.get("yoda")?.secret, "jedi*knight");
});

Deno.test("parseCredentials() ignores blank and whitespace-only lines", () => {
  const { accounts, problems } = parseCredentials("\n\nyoda a\n   \n\t\n\r\nhans b\n\n");
  assert.deepEqual(problems, []);
  assert.deepEqual([...accounts.values()], [
    { username: "yoda", secret: "a", line: 3 },
    { username: "hans", secret: "b", line: 7 },
  ]);
});

Deno.test("parseCredentials() strips CR from CRLF lines", () => {
  const { accounts, problems } = parseCredentials("yoda jedi*knight\r\nhans falcon*solo\r\n");
  assert.deepEqual(problems, []);
  assert.equal(accounts.get("yoda")?.secret, "jedi*knight");
  assert.equal(accounts.get("hans")?.secret, "falcon*solo");
});

Deno.test("parseCredentials() is case-sensitive in usernames", () => {
  const { accounts, problems } = parseCredentials("yoda a\nYoda b\n");
  assert.deepEqual(problems, []);
  assert.equal(accounts.get("yoda")?.secret, "a");
  assert.equal(accounts.get("Yoda")?.secret, "b");
});

Deno.test("parseCredentials() keeps a hashed secret as it is", () => {
  const secret = "scrypt$1024$8$1$c2FsdA==$a2V5";
  const { accounts } = parseCredentials(`yoda ${secret}\n`);
  assert.equal(accounts.get("yoda")?.secret, secret);
});

const MALFORMED: [string, string][] = [
  ["a lone username", "yoda"],
  ["three fields", "yoda jedi knight"],
  ["two spaces", "yoda  jedi"],
  ["a leading space", " yoda jedi"],
  ["a trailing space", "yoda jedi "],
  ["a tab separator", "yoda\tjedi"],
  ["a control character in the password", "yoda je\u0001di"],
  ["a slash in the username", "yo/da jedi"],
  ["a backslash in the username", "yo\\da jedi"],
  ["an overlong username", `${"u".repeat(33)} jedi`],
];

for (const [what, line] of MALFORMED) {
  Deno.test(`parseCredentials() reports and skips a line with ${what}`, () => {
    const { accounts, problems } = parseCredentials(
      `hans solo\n${line}\nleia organa\n`,
      "creds.txt",
    );
    assert.deepEqual(problems, [
      'creds.txt:2: malformed line skipped (expected "username password")',
    ]);
    assert.deepEqual([...accounts.keys()], ["hans", "leia"]);
  });
}

Deno.test("parseCredentials() names credentials.txt by default", () => {
  const { problems } = parseCredentials("\n\nbad\n");
  assert.deepEqual(problems, [
    'credentials.txt:3: malformed line skipped (expected "username password")',
  ]);
});

Deno.test("parseCredentials() counts line numbers across CRLF lines", () => {
  const { problems } = parseCredentials("a b\r\n\r\nbad\r\n");
  assert.deepEqual(problems, [
    'credentials.txt:3: malformed line skipped (expected "username password")',
  ]);
});

Deno.test("parseCredentials() keeps the first of duplicate usernames and reports the rest", () => {
  const { accounts, problems } = parseCredentials("yoda first\nhans x\nyoda second\nyoda third\n");
  assert.equal(accounts.get("yoda")?.secret, "first");
  assert.equal(accounts.get("yoda")?.line, 1);
  assert.deepEqual(problems, [
    'credentials.txt:3: duplicate username "yoda" skipped',
    'credentials.txt:4: duplicate username "yoda" skipped',
  ]);
});

Deno.test("parseCredentials() treats NFC and NFD spellings of a name as the same user", () => {
  const nfc = "Jos\u00e9";
  const nfd = "Jose\u0301";
  const { accounts, problems } = parseCredentials(`${nfd} a\n${nfc} b\n`);
  assert.deepEqual([...accounts.keys()], [nfc]);
  assert.equal(accounts.get(nfc)?.username, nfc);
  assert.equal(problems.length, 1);
});

Deno.test("parseCredentials() never throws on arbitrary text", () => {
  const text = "\u0000\u0000\n\ufffd \ufffd\n \n a b c\n\r\r\n" + "x ".repeat(1000);
  const { problems } = parseCredentials(text);
  assert.ok(problems.length > 0);
});

Deno.test({
  name: "parseCredentials() reads the sample credentials file",
  ignore: SAMPLE === undefined,
  fn() {
    const { accounts, problems } = parseCredentials(SAMPLE!, "testdata/credentials.txt");
    assert.deepEqual(problems, [
      'testdata/credentials.txt:4: malformed line skipped (expected "username password")',
      'testdata/credentials.txt:6: duplicate username "yoda" skipped',
    ]);
    assert.deepEqual([...accounts.keys()], ["yoda", "hans", "leia"]);
    assert.equal(accounts.get("hans")?.secret, "falcon*solo");
  },
});

Deno.test("normaliseName() returns NFC", () => {
  assert.equal(normaliseName("Jose\u0301"), "Jos\u00e9");
  assert.equal(normaliseName("yoda"), "yoda");
});

Deno.test("DEFAULT_HASH_COST is scrypt N=16384 r=8 p=1", () => {
  assert.deepEqual(DEFAULT_HASH_COST, { N: 16384, r: 8, p: 1 });
});

Deno.test("hashPassword() writes a self-describing scrypt string", async () => {
  const hash = await hashPassword("jedi*knight", CHEAP);
  assert.match(hash, /^scrypt\$1024\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
});

Deno.test("hashPassword() salts: the same password hashes differently each time", async () => {
  const [a, b] = await Promise.all([hashPassword("same", CHEAP), hashPassword("same", CHEAP)]);
  assert.notEqual(a, b);
});

Deno.test("verifyPassword() accepts the right password against its hash", async () => {
  const hash = await hashPassword("jedi*knight", CHEAP);
  assert.equal(await verifyPassword("jedi*knight", hash), true);
});

Deno.test("verifyPassword() accepts a non-ASCII password against its hash", async () => {
  const hash = await hashPassword("пароль😀", CHEAP);
  assert.equal(await verifyPassword("пароль😀", hash), true);
  assert.equal(await verifyPassword("пароль", hash), false);
});

Deno.test("verifyPassword() rejects a wrong password against a hash", async () => {
  const hash = await hashPassword("jedi*knight", CHEAP);
  for (const wrong of ["jedi*knigh", "Jedi*knight", "jedi*knight ", "", hash]) {
    assert.equal(await verifyPassword(wrong, hash), false, wrong);
  }
});

Deno.test("verifyPassword() compares a clear-text secret exactly", async () => {
  assert.equal(await verifyPassword("jedi*knight", "jedi*knight"), true);
  assert.equal(await verifyPassword("jedi*knigh", "jedi*knight"), false);
  assert.equal(await verifyPassword("JEDI*KNIGHT", "jedi*knight"), false);
  assert.equal(await verifyPassword("jedi*knight ", "jedi*knight"), false);
  assert.equal(await verifyPassword("", "jedi*knight"), false);
});

function replaceField(hash: string, index: number, value: string): string {
  const fields = hash.split("$");
  fields[index] = value;
  return fields.join("$");
}

function flipFirstChar(text: string): string {
  return (text[0] === "A" ? "B" : "A") + text.slice(1);
}

Deno.test("verifyPassword() rejects a hash whose key was tampered with", async () => {
  const hash = await hashPassword("pw", CHEAP);
  const key = hash.split("$")[5]!;
  assert.equal(await verifyPassword("pw", replaceField(hash, 5, flipFirstChar(key))), false);
});

Deno.test("verifyPassword() rejects a hash whose salt was tampered with", async () => {
  const hash = await hashPassword("pw", CHEAP);
  const salt = hash.split("$")[4]!;
  assert.equal(await verifyPassword("pw", replaceField(hash, 4, flipFirstChar(salt))), false);
});

Deno.test("verifyPassword() rejects a hash whose cost was changed", async () => {
  const hash = await hashPassword("pw", CHEAP);
  assert.equal(await verifyPassword("pw", replaceField(hash, 1, "2048")), false);
  assert.equal(await verifyPassword("pw", replaceField(hash, 2, "4")), false);
  assert.equal(await verifyPassword("pw", replaceField(hash, 3, "2")), false);
});

Deno.test("verifyPassword() rejects a key of the wrong length", async () => {
  const hash = await hashPassword("pw", CHEAP);
  const short = btoa("x".repeat(16));
  assert.equal(await verifyPassword("pw", replaceField(hash, 5, short)), false);
});

const ABSURD: [string, string][] = [
  ["N above 2^20", "2097152$8$1"],
  ["a huge N", "99999999999999999999$8$1"],
  ["r above 32", "1024$33$1"],
  ["p above 16", "1024$8$17"],
  ["N that is not a power of two", "1000$8$1"],
  ["N of 0", "0$8$1"],
  ["N of 1", "1$8$1"],
  ["r of 0", "1024$0$1"],
];

for (const [what, params] of ABSURD) {
  Deno.test(`verifyPassword() returns false for ${what}, without throwing`, async () => {
    const hash = await hashPassword("pw", CHEAP);
    const [, , , , salt, key] = hash.split("$");
    assert.equal(await verifyPassword("pw", `scrypt$${params}$${salt}$${key}`), false);
  });
}

Deno.test({
  name: "verifyPassword() refuses parameters that need gigabytes of memory",
  async fn() {
    const hash = await hashPassword("pw", CHEAP);
    const [, , , , salt, key] = hash.split("$");
    assert.equal(await verifyPassword("pw", `scrypt$1048576$32$1$${salt}$${key}`), false);
  },
});

Deno.test("verifyPassword() treats a malformed scrypt-looking secret as clear text", async () => {
  assert.equal(await verifyPassword("scrypt$x", "scrypt$x"), true);
  assert.equal(await verifyPassword("scrypt$1024$8$1$!!$!!", "scrypt$1024$8$1$!!$!!"), true);
});

const USERNAMES: [string, string | undefined][] = [
  ["yoda", undefined],
  ["Yoda_2", undefined],
  ["a", undefined],
  ["u".repeat(32), undefined],
  ["😀".repeat(32), undefined],
  ["Jos\u00e9", undefined],
  ["#comment", undefined],
  ["", "Username must not be empty"],
  ["u".repeat(33), "Username must be at most 32 characters"],
  ["😀".repeat(33), "Username must be at most 32 characters"],
  ["yo da", "Username must not contain spaces or control characters"],
  [" yoda", "Username must not contain spaces or control characters"],
  ["yoda\t", "Username must not contain spaces or control characters"],
  ["yo\u00a0da", "Username must not contain spaces or control characters"],
  ["yo\nda", "Username must not contain spaces or control characters"],
  ["yo\u0000da", "Username must not contain spaces or control characters"],
  ["yo\u007fda", "Username must not contain spaces or control characters"],
  ["yo\u0085da", "Username must not contain spaces or control characters"],
  ["yo\u2028da", "Username must not contain spaces or control characters"],
  ["yo/da", "Username must not contain / or \\"],
  ["..\\yoda", "Username must not contain / or \\"],
  ["../etc", "Username must not contain / or \\"],
];

for (const [name, problem] of USERNAMES) {
  Deno.test(`usernameProblem(${JSON.stringify(name)}) is ${JSON.stringify(problem)}`, () => {
    assert.equal(usernameProblem(name), problem);
  });
}

const PASSWORDS: [string, string | undefined][] = [
  ["jedi*knight", undefined],
  ["p", undefined],
  ["x".repeat(128), undefined],
  ["пароль😀", undefined],
  ["scrypt$looks$like$a$hash", undefined],
  ["", "Password must not be empty"],
  ["x".repeat(129), "Password must be at most 128 characters"],
  ["😀".repeat(129), "Password must be at most 128 characters"],
  ["two words", "Password must not contain spaces or control characters"],
  ["tab\there", "Password must not contain spaces or control characters"],
  ["new\nline", "Password must not contain spaces or control characters"],
  ["bell\u0007", "Password must not contain spaces or control characters"],
  ["del\u007f", "Password must not contain spaces or control characters"],
];

for (const [password, problem] of PASSWORDS) {
  Deno.test(
    `passwordProblem(${JSON.stringify(password.slice(0, 20))}…) is ${JSON.stringify(problem)}`,
    () => {
      assert.equal(passwordProblem(password), problem);
    },
  );
}

Deno.test("setSecret() replaces only the user's line", () => {
  const text = "hans falcon*solo\nyoda jedi*knight\nleia organa\n";
  assert.equal(
    setSecret(text, "yoda", "scrypt$h"),
    "hans falcon*solo\nyoda scrypt$h\nleia organa\n",
  );
});

Deno.test("setSecret() keeps CRLF on the replaced line and on every other line", () => {
  const text = "hans falcon*solo\r\nyoda jedi*knight\r\nleia organa\r\n";
  assert.equal(
    setSecret(text, "yoda", "new"),
    "hans falcon*solo\r\nyoda new\r\nleia organa\r\n",
  );
});

Deno.test("setSecret() keeps mixed line endings byte for byte", () => {
  const text = "hans a\r\nyoda b\nleia c\r\n\r\n\n";
  assert.equal(setSecret(text, "yoda", "new"), "hans a\r\nyoda new\nleia c\r\n\r\n\n");
  assert.equal(setSecret(text, "hans", "new"), "hans new\r\nyoda b\nleia c\r\n\r\n\n");
});

Deno.test("setSecret() replaces the last line of a file with no trailing newline", () => {
  assert.equal(setSecret("hans a\nyoda b", "yoda", "new"), "hans a\nyoda new");
});

Deno.test("setSecret() appends a new user after a file with no trailing newline", () => {
  assert.equal(setSecret("hans a", "yoda", "new"), "hans a\nyoda new\n");
});

Deno.test("setSecret() appends a new user after a file ending in a newline", () => {
  assert.equal(setSecret("hans a\n", "yoda", "new"), "hans a\nyoda new\n");
  assert.equal(setSecret("hans a\r\n", "yoda", "new"), "hans a\r\nyoda new\n");
});

Deno.test("setSecret() writes one line into an empty file", () => {
  assert.equal(setSecret("", "yoda", "new"), "yoda new\n");
});

Deno.test("setSecret() leaves comment-like, blank and malformed lines alone", () => {
  const text = "# accounts\n\n   \nyoda\nyoda a b\n// yoda x\nyoda old\nhans a\n";
  assert.equal(
    setSecret(text, "yoda", "new"),
    "# accounts\n\n   \nyoda\nyoda a b\n// yoda x\nyoda new\nhans a\n",
  );
});

Deno.test("setSecret() does not match a user whose name merely starts the same", () => {
  assert.equal(setSecret("yodas a\nyod b\n", "yoda", "new"), "yodas a\nyod b\nyoda new\n");
});

Deno.test("setSecret() is case-sensitive in usernames", () => {
  assert.equal(setSecret("Yoda a\n", "yoda", "new"), "Yoda a\nyoda new\n");
});

Deno.test("setSecret() replaces the first of duplicate lines, the one that counts", () => {
  assert.equal(setSecret("yoda a\nyoda b\n", "yoda", "new"), "yoda new\nyoda b\n");
});

Deno.test("setSecret() matches an NFD spelling of the name", () => {
  assert.equal(setSecret("Jose\u0301 a\n", "Jos\u00e9", "new"), "Jos\u00e9 new\n");
});

Deno.test("setSecret() output parses back with the new secret", async () => {
  const hash = await hashPassword("new*password", CHEAP);
  const text = setSecret("hans a\r\nyoda b\r\n", "yoda", hash);
  const { accounts, problems } = parseCredentials(text);
  assert.deepEqual(problems, []);
  assert.equal(accounts.get("hans")?.secret, "a");
  assert.equal(await verifyPassword("new*password", accounts.get("yoda")!.secret), true);
});

Deno.test("hashClearPasswords() hashes every clear password and keeps every other byte", async () => {
  const hashed = await hashPassword("already", CHEAP);
  const text = "# the accounts\r\nyoda jedi\r\n\nbad line here\nnewbie " + hashed + "\nhans falcon";
  const result = await hashClearPasswords(text, (password) => hashPassword(password, CHEAP));
  assert.equal(result.hashed, 2);
  const lines = result.text.split("\n");
  assert.equal(lines.length, 6);
  assert.equal(lines[0], "# the accounts\r");
  assert.match(lines[1]!, /^yoda scrypt\$[^ ]+\r$/);
  assert.deepEqual(lines.slice(2, 5), ["", "bad line here", `newbie ${hashed}`]);
  assert.match(lines[5]!, /^hans scrypt\$/);
  const accounts = parseCredentials(result.text).accounts;
  assert.equal(await verifyPassword("jedi", accounts.get("yoda")!.secret), true);
  assert.equal(await verifyPassword("falcon", accounts.get("hans")!.secret), true);
  assert.equal(accounts.get("newbie")!.secret, hashed);
  assert.ok([...accounts.values()].every((account) => isHashed(account.secret)));
});

Deno.test("hashCredentialsFile() rewrites the file once and then finds nothing to do", async () => {
  const files = new MemoryFiles();
  files.contents.set("c.txt", "yoda jedi\nvader sithlord\n");
  assert.equal(await hashCredentialsFile(files, "c.txt", CHEAP), 2);
  const once = files.contents.get("c.txt");
  assert.equal(await hashCredentialsFile(files, "c.txt", CHEAP), 0);
  assert.equal(files.contents.get("c.txt"), once);
  await assert.rejects(() => hashCredentialsFile(files, "missing.txt", CHEAP), /does not exist/);
});

Deno.test("exposureWarning() warns about clear passwords others can read, and says how to fix it", async () => {
  const clear = "yoda jedi\nhans falcon\n";
  assert.equal(
    exposureWarning("credentials.txt", 0o100644, clear),
    "Warning: credentials.txt is readable by group and others (mode 0644) and holds 2 " +
      'clear-text password(s). Protect it with "chmod 600 credentials.txt" and hash them with ' +
      '"chat-server --hash-credentials".',
  );
  assert.match(
    exposureWarning("/etc/toom/c.txt", 0o640, clear)!,
    /readable by group \(mode 0640\)/,
  );
  assert.match(
    exposureWarning("/etc/toom/c.txt", 0o604, clear)!,
    /by others .*"chat-server --hash-credentials --credentials \/etc\/toom\/c.txt"/,
  );
  assert.equal(exposureWarning("credentials.txt", 0o600, clear), undefined);
  assert.equal(exposureWarning("credentials.txt", 0o700, clear), undefined);
  const hashed = `yoda ${await hashPassword("jedi", CHEAP)}\n`;
  assert.equal(exposureWarning("credentials.txt", 0o644, hashed), undefined);
});
