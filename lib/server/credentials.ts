/**
 * credentials.txt: one `username password` per line. Passwords may be stored in clear (as the
 * sample file ships) or as a self-describing scrypt string, which is what the server writes.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { createHash } from "node:crypto";

/** One account as read from the file. */
export interface Account {
  username: string;
  /** Clear text or an `scrypt$N$r$p$salt$hash` string. */
  secret: string;
  /** 1-based line number, for messages. */
  line: number;
}

/** The parsed file: accounts by name, and the lines that were skipped. */
export interface CredentialsFile {
  accounts: Map<string, Account>;
  problems: string[];
}

/** scrypt cost parameters; tests pass a cheaper one. */
export interface HashCost {
  N: number;
  r: number;
  p: number;
}

/** What the server writes by default: about 16 MiB and a few tens of milliseconds per hash. */
export const DEFAULT_HASH_COST: HashCost = { N: 16384, r: 8, p: 1 };

const SCRYPT_PATTERN = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;
const KEY_LENGTH = 32;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Names are compared exactly (case-sensitive) after Unicode normalisation. */
export function normaliseName(name: string): string {
  return name.normalize("NFC");
}

/** Why a username cannot be an account name, or undefined when it can. */
export function usernameProblem(name: string): string | undefined {
  if (name.length === 0) return "Username must not be empty";
  if ([...name].length > 32) return "Username must be at most 32 characters";
  if (/\s/.test(name) || CONTROL.test(name)) {
    return "Username must not contain spaces or control characters";
  }
  if (/[/\\]/.test(name)) return "Username must not contain / or \\";
  return undefined;
}

/** Why a password cannot be stored, or undefined when it can. */
export function passwordProblem(password: string): string | undefined {
  if (password.length === 0) return "Password must not be empty";
  if ([...password].length > 128) return "Password must be at most 128 characters";
  if (/\s/.test(password) || CONTROL.test(password)) {
    return "Password must not contain spaces or control characters";
  }
  return undefined;
}

/** Parses credentials text; malformed and duplicate lines are reported and skipped. */
export function parseCredentials(text: string, fileName = "credentials.txt"): CredentialsFile {
  const accounts = new Map<string, Account>();
  const problems: string[] = [];
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const number = index + 1;
    if (line.trim() === "") return;
    const fields = line.split(" ");
    const [username, secret] = fields;
    if (
      fields.length !== 2 || !username || !secret || usernameProblem(username) !== undefined ||
      CONTROL.test(secret)
    ) {
      problems.push(`${fileName}:${number}: malformed line skipped (expected "username password")`);
      return;
    }
    const key = normaliseName(username);
    if (accounts.has(key)) {
      problems.push(`${fileName}:${number}: duplicate username "${username}" skipped`);
      return;
    }
    accounts.set(key, { username: key, secret, line: number });
  });
  return { accounts, problems };
}

/**
 * Derives a `keyLength`-byte scrypt key. Where it runs is the caller's choice: the server runs it
 * on a worker thread of its hash pool (hash_pool.ts); `deriveHere` runs it on the runtime's own
 * thread pool.
 */
export type Derive = (
  password: string,
  salt: Uint8Array,
  cost: HashCost,
  keyLength: number,
) => Promise<Uint8Array>;

/** The memory limit to give node:crypto's scrypt for `cost` (it needs 128·N·r bytes). */
export function scryptMaxmem(cost: HashCost): number {
  return 256 * cost.N * cost.r + 1024 * 1024;
}

/** Derives a key with node:crypto's asynchronous scrypt, unbounded: for tools and tests. */
export const deriveHere: Derive = (password, salt, cost, keyLength) =>
  new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      keyLength,
      { N: cost.N, r: cost.r, p: cost.p, maxmem: scryptMaxmem(cost) },
      (error, key) => error ? reject(error) : resolve(key),
    );
  });

/** Hashes a password into a self-describing `scrypt$N$r$p$salt$hash` string. */
export async function hashPassword(
  password: string,
  cost: HashCost = DEFAULT_HASH_COST,
  derive: Derive = deriveHere,
): Promise<string> {
  const salt = randomBytes(16);
  const key = Buffer.from(await derive(password, salt, cost, KEY_LENGTH));
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString("base64")}$${
    key.toString("base64")
  }`;
}

/** Largest scrypt memory (128·N·r bytes) and work (N·r·p) a stored hash may ask for. */
const MAX_SCRYPT_MEMORY = 64 * 1024 * 1024;
const MAX_SCRYPT_WORK = 1 << 22;

function affordable(cost: HashCost): boolean {
  return cost.N >= 2 && (cost.N & (cost.N - 1)) === 0 && cost.r >= 1 && cost.p >= 1 &&
    128 * cost.N * cost.r <= MAX_SCRYPT_MEMORY && cost.N * cost.r * cost.p <= MAX_SCRYPT_WORK;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** Whether a stored secret is an scrypt hash (checking it costs real work) rather than clear text. */
export function isHashed(secret: string): boolean {
  return SCRYPT_PATTERN.test(secret);
}

/** Checks a password against a stored secret, clear or hashed, in constant time. */
export async function verifyPassword(
  password: string,
  secret: string,
  derive: Derive = deriveHere,
): Promise<boolean> {
  const match = SCRYPT_PATTERN.exec(secret);
  if (!match) return timingSafeEqual(digest(password), digest(secret));
  const [, n, r, p, saltText, keyText] = match;
  const cost = { N: Number(n), r: Number(r), p: Number(p) };
  const expected = Buffer.from(keyText!, "base64");
  // Refuse absurd parameters from a hand-edited file rather than exhaust memory.
  if (!affordable(cost) || expected.length !== KEY_LENGTH) {
    return false;
  }
  try {
    const salt = Buffer.from(saltText!, "base64");
    const actual = Buffer.from(await derive(password, salt, cost, KEY_LENGTH));
    return timingSafeEqual(actual, expected);
  } catch {
    return false;
  }
}

/**
 * Returns the credentials text with `username`'s password set to `secret`: its line is
 * replaced in place, or a line is appended; every other line is kept byte for byte.
 */
export function setSecret(text: string, username: string, secret: string): string {
  const lines = text.split("\n");
  const key = normaliseName(username);
  const index = lines.findIndex((raw) => {
    const fields = raw.replace(/\r$/, "").split(" ");
    return fields.length === 2 && normaliseName(fields[0]!) === key;
  });
  const entry = `${username} ${secret}`;
  if (index >= 0) {
    lines[index] = lines[index]!.endsWith("\r") ? entry + "\r" : entry;
    return lines.join("\n");
  }
  if (text === "") return entry + "\n";
  return (text.endsWith("\n") ? text : text + "\n") + entry + "\n";
}

/**
 * Returns the credentials text with every clear-text password replaced by its scrypt hash (through
 * `hash`), every other line kept byte for byte, and how many were hashed. Lines the parser skips
 * (malformed, duplicate) are left as they are.
 */
export async function hashClearPasswords(
  text: string,
  hash: (password: string) => Promise<string>,
): Promise<{ text: string; hashed: number }> {
  let result = text;
  let hashed = 0;
  for (const account of parseCredentials(text).accounts.values()) {
    if (isHashed(account.secret)) continue;
    result = setSecret(result, account.username, await hash(account.secret));
    hashed++;
  }
  return { text: result, hashed };
}

/**
 * The start-up warning for a credentials file that others can read while it holds clear-text
 * passwords (`mode` as from stat), or undefined when there is nothing to warn about.
 */
export function exposureWarning(path: string, mode: number, text: string): string | undefined {
  const readers = [mode & 0o040 ? "group" : "", mode & 0o004 ? "others" : ""].filter(Boolean);
  if (readers.length === 0) return undefined;
  const clear = [...parseCredentials(text, path).accounts.values()]
    .filter((account) => !isHashed(account.secret)).length;
  if (clear === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  const option = path === "credentials.txt" ? "" : ` --credentials ${path}`;
  return `Warning: ${path} is readable by ${readers.join(" and ")} (mode ${octal}) and holds ` +
    `${clear} clear-text password(s). Protect it with "chmod 600 ${path}" and hash them with ` +
    `"chat-server --hash-credentials${option}".`;
}
