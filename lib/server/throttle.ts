/**
 * Limits by source address: how many failed logins, new accounts (or anything else counted) one
 * address may have per window, on an injected clock, in bounded memory. An address is an IPv4
 * address or an IPv6 /64 prefix (one host's or one home's share of IPv6); an IPv4-mapped IPv6
 * address counts as its IPv4 address. Pure: nothing here logs, reads the network or keeps a timer.
 */
import type { Clock } from "../shared/clock.ts";

/** At most `limit` events per `windowMs` from one address; `limit` 0 means no limit. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

/** Addresses remembered at once by default; past it the least recently seen is forgotten. */
export const DEFAULT_MAX_ADDRESSES = 10_000;

/**
 * The key an address is counted under: `1.2.3.4` for IPv4 (mapped or not), `2001:db8:0:1::/64`
 * for IPv6, and anything that is not an IP address (a test's memory address) as it is.
 */
export function addressKey(hostname: string): string {
  let host = hostname.trim().toLowerCase();
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const zone = host.indexOf("%");
  if (zone >= 0) host = host.slice(0, zone);
  if (parseIPv4(host)) return host;
  const groups = parseIPv6(host);
  if (!groups) return hostname;
  const mapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (mapped) {
    const [high, low] = [groups[6]!, groups[7]!];
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  }
  return `${groups.slice(0, 4).map((group) => group.toString(16)).join(":")}::/64`;
}

function parseIPv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part))) return undefined;
  const bytes = parts.map(Number);
  return bytes.every((byte) => byte <= 255) ? bytes : undefined;
}

/** The eight 16-bit groups of an IPv6 address, or undefined when it is not one. */
function parseIPv6(text: string): number[] | undefined {
  if (!text.includes(":")) return undefined;
  let head = text;
  const tail: number[] = [];
  // A dotted IPv4 tail (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const bytes = parseIPv4(text.slice(lastColon + 1));
    if (!bytes) return undefined;
    tail.push((bytes[0]! << 8) | bytes[1]!, (bytes[2]! << 8) | bytes[3]!);
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const read = (part: string) => part === "" ? [] : part.split(":");
  const left = read(halves[0]!);
  const right = halves.length === 2 ? read(halves[1]!) : [];
  if (![...left, ...right].every((group) => /^[0-9a-f]{1,4}$/.test(group))) return undefined;
  const given = [...left, ...right].map((group) => parseInt(group, 16));
  const missing = 8 - tail.length - given.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const zeros = new Array<number>(Math.max(0, missing)).fill(0);
  return [...given.slice(0, left.length), ...zeros, ...given.slice(left.length), ...tail];
}

interface Entry {
  /** Events still allowed (a token bucket refilled at `limit` per window). */
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
  /** When a refusal was last reported, so a flood is logged once per window. */
  reportedAt?: number;
}

/**
 * Counts events per address with a token bucket: `limit` at once, refilled at `limit` per window,
 * so an address over its limit gets one more try every `windowMs / limit`. An address untouched
 * for a whole window has a full bucket again and is forgotten; past `maxAddresses` the least
 * recently counted is forgotten early, so a flood of distinct addresses cannot grow it.
 */
export class AddressThrottle {
  /** Entries in least recently touched order (a Map keeps insertion order; touching re-inserts). */
  readonly #entries = new Map<string, Entry>();
  readonly #maxAddresses: number;

  constructor(
    readonly rule: RateRule,
    readonly clock: Clock,
    options: { maxAddresses?: number } = {},
  ) {
    this.#maxAddresses = options.maxAddresses ?? DEFAULT_MAX_ADDRESSES;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether `hostname` may have one more event now (nothing is counted). */
  allows(hostname: string): boolean {
    if (this.rule.limit <= 0) return true;
    const entry = this.#current(addressKey(hostname), this.clock.now());
    return entry === undefined || entry.tokens >= 1;
  }

  /** Counts one event for `hostname`; false (and nothing counted) when it is over its limit. */
  take(hostname: string): boolean {
    if (this.rule.limit <= 0) return true;
    const key = addressKey(hostname);
    const now = this.clock.now();
    const entry = this.#current(key, now) ?? { tokens: this.rule.limit, at: now };
    this.#touch(key, entry, now);
    if (entry.tokens < 1) return false;
    entry.tokens -= 1;
    return true;
  }

  /** Gives back an event taken for work that turned out not to count (a right password). */
  refund(hostname: string): void {
    if (this.rule.limit <= 0) return;
    const key = addressKey(hostname);
    const now = this.clock.now();
    const entry = this.#current(key, now);
    if (!entry) return;
    entry.tokens = Math.min(this.rule.limit, entry.tokens + 1);
    this.#touch(key, entry, now);
  }

  /**
   * Whether a refusal for `hostname` should be reported: true for the first one in a window,
   * false for the rest, so a flood from one address makes one log line per window.
   */
  shouldReport(hostname: string): boolean {
    const key = addressKey(hostname);
    const now = this.clock.now();
    const entry = this.#current(key, now) ?? { tokens: this.rule.limit, at: now };
    this.#touch(key, entry, now);
    if (entry.reportedAt !== undefined && now - entry.reportedAt < this.rule.windowMs) {
      return false;
    }
    entry.reportedAt = now;
    return true;
  }

  /** The entry for `key` brought up to `now`, or undefined when there is none (or it expired). */
  #current(key: string, now: number): Entry | undefined {
    this.#expire(now);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    // A clock that steps back neither adds nor removes tokens.
    const elapsed = Math.max(0, now - entry.at);
    entry.tokens = Math.min(
      this.rule.limit,
      entry.tokens + (elapsed * this.rule.limit) / this.rule.windowMs,
    );
    entry.at = Math.max(entry.at, now);
    return entry;
  }

  #touch(key: string, entry: Entry, now: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    entry.at = Math.max(entry.at, now);
    while (this.#entries.size > this.#maxAddresses) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  /** Forgets, oldest first, entries untouched for a whole window (their bucket is full again). */
  #expire(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < this.rule.windowMs) break;
      this.#entries.delete(key);
    }
  }
}
