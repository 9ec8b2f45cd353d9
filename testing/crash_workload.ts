/**
 * The workload of the store crash test (tests/store_crash_test.ts) and its checks: raw clients
 * post to the board, leave offline messages, block and unblock, and register accounts until the
 * server is killed, recording in a {@linkcode Ledger} what was acknowledged, refused or left
 * unanswered; after the restart the checks hold the server's board, deliveries, blocks and
 * accounts to that ledger (every acknowledged change there exactly once, nothing unacknowledged
 * more than once).
 */
import assert from "node:assert/strict";
import { ConnectionLostError, type Reply } from "../lib/client/server_link.ts";
import { loggedIn, RawClient } from "./raw_client.ts";

/** Who acts while the server runs: each posts, leaves messages and blocks, on one connection. */
export const SENDERS = ["yoda", "vader", "hans", "obiwan"];
/** Who stays offline while it runs: offline messages wait for them, and senders block them. */
export const RECIPIENTS = ["luke", "leia", "lando", "chewie"];
/** Offline messages one sender may leave one recipient (the server's fair share). */
const PER_SENDER_SHARE = 20;
/** What a recipient is told when messaging a sender who has blocked it. */
const BLOCKED_TEXT = "Your message could not be delivered as the recipient has blocked you";
/** A timestamp before any post: `RDM` after it lists the whole board. */
export const BEFORE_EVERYTHING = "01 Jan 2000 00:00:00";

/** What became of a request: a success reply, a refusal, or no reply before the server died. */
export type Outcome = "acked" | "refused" | "unanswered";

/** An offline message a sender left (its token is its text). */
export interface DirectMessage {
  token: string;
  from: string;
  to: string;
  outcome: Outcome;
}

/** A post a sender made to the board (its token is in its text). */
export interface Post {
  token: string;
  author: string;
  outcome: Outcome;
  /** From the acknowledgement: the number and time the post must keep. */
  number?: number;
  time?: string;
}

/** An account a registrar asked for in a round. */
export interface Registration {
  round: number;
  name: string;
  password: string;
  outcome: Outcome;
}

/** Everything the clients asked for, and what the server said, over all rounds. */
export class Ledger {
  readonly direct = new Map<string, DirectMessage>();
  readonly posts = new Map<string, Post>();
  readonly registrations: Registration[] = [];
  /** Whether `sender>recipient` is blocked; undefined while a change of it went unanswered. */
  readonly blocks = new Map<string, boolean | undefined>();
  /** Replies no request here should get (a refusal of a valid command, a wrong text). */
  readonly surprises: string[] = [];
  /** Refs seen per message token, and the round each ref was first delivered in. */
  readonly delivered = new Map<string, Map<string, number>>();
  /** Replies received while the server ran. */
  replies = 0;
  /** This round's requests by kind and outcome ("message acked"), for its summary. */
  tally = new Map<string, number>();

  replied(): void {
    this.replies++;
  }

  count(kind: string, outcome: Outcome): void {
    const key = `${kind} ${outcome}`;
    this.tally.set(key, (this.tally.get(key) ?? 0) + 1);
  }

  /** This round's tally as "5 message, 2 MSG acked; 3 unanswered", and starts a new one. */
  summary(): string {
    const part = (outcome: Outcome) =>
      [...this.tally].filter(([key]) => key.endsWith(` ${outcome}`))
        .map(([key, n]) => `${n} ${key.slice(0, -outcome.length - 1)}`).join(", ") || "none";
    const text = `acknowledged ${part("acked")}; unanswered ${part("unanswered")}`;
    this.tally = new Map();
    return text;
  }
}

const LOST = Symbol("lost");

/** A request's reply, or LOST if the connection ended first (the server was killed). */
async function attempt(request: () => Promise<Reply>): Promise<Reply | typeof LOST> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof ConnectionLostError) return LOST;
    throw error;
  }
}

/**
 * One sender's part of a round: until the server dies, posts, leaves offline messages for the
 * recipients and toggles blocks on them, one request at a time, recording every outcome.
 */
export async function sender(
  client: RawClient,
  user: string,
  context: { round: number; random: () => number; ledger: Ledger },
): Promise<void> {
  const { round, random, ledger } = context;
  const sentTo = new Map<string, number>();
  for (let seq = 1;; seq++) {
    const recipient = RECIPIENTS[Math.floor(random() * RECIPIENTS.length)]!;
    const roll = random();
    if (roll < 0.3) {
      const post: Post = { token: `post-${round}-${user}-${seq}`, author: user, outcome: "acked" };
      ledger.posts.set(post.token, post);
      const reply = await attempt(() => client.cmd(`MSG ${post.token} from ${user}`));
      if (reply === LOST) {
        return void (post.outcome = "unanswered", ledger.count("MSG", "unanswered"));
      }
      ledger.replied();
      const acked = reply.ok
        ? /^Message #(\d+) posted at (.+)\.$/.exec(reply.lines[0] ?? "")
        : null;
      if (!acked || reply.lines.length !== 1) {
        post.outcome = "refused";
        ledger.surprises.push(`MSG by ${user}: ${reply.lines.join(" ")}`);
        continue;
      }
      post.number = Number(acked[1]);
      post.time = acked[2]!;
      ledger.count("MSG", "acked");
    } else if (roll < 0.75 && (sentTo.get(recipient) ?? 0) < PER_SENDER_SHARE) {
      sentTo.set(recipient, (sentTo.get(recipient) ?? 0) + 1);
      const message: DirectMessage = {
        token: `dm-${round}-${user}-${seq}`,
        from: user,
        to: recipient,
        outcome: "acked",
      };
      ledger.direct.set(message.token, message);
      const reply = await attempt(() => client.cmd(`message ${recipient} ${message.token} hi`));
      if (reply === LOST) {
        return void (message.outcome = "unanswered", ledger.count("message", "unanswered"));
      }
      ledger.replied();
      const promised = `${recipient} is offline; the message will be delivered when they log in.`;
      if (!reply.ok || reply.lines.join("\n") !== promised) {
        message.outcome = "refused";
        ledger.surprises.push(`message by ${user}: ${reply.lines.join(" ")}`);
        continue;
      }
      ledger.count("message", "acked");
    } else {
      const pair = `${user}>${recipient}`;
      const block = ledger.blocks.get(pair) !== true;
      const verb = block ? "block" : "unblock";
      const reply = await attempt(() => client.cmd(`${verb} ${recipient}`));
      if (reply === LOST) {
        return void (ledger.blocks.set(pair, undefined), ledger.count(verb, "unanswered"));
      }
      ledger.replied();
      if (!reply.ok || reply.lines.join("\n") !== `${recipient} is ${verb}ed`) {
        ledger.surprises.push(`${verb} by ${user}: ${reply.lines.join(" ")}`);
        return;
      }
      ledger.blocks.set(pair, block);
      ledger.count(verb, "acked");
    }
  }
}

/** Registers new accounts, one connection each, until the server dies. */
export async function registrar(
  port: number,
  context: { round: number; index: number; ledger: Ledger },
): Promise<void> {
  const { round, index, ledger } = context;
  for (let seq = 1;; seq++) {
    const registration: Registration = {
      round,
      name: `new${round}-${index}-${seq}`,
      password: `pw-${round}-${index}-${seq}`,
      outcome: "unanswered",
    };
    let client: RawClient;
    try {
      client = await RawClient.connect(port);
    } catch {
      return; // The server is gone: nothing was asked.
    }
    try {
      ledger.registrations.push(registration);
      let reply = await attempt(() => client.user(registration.name));
      if (reply !== LOST && reply.ok) {
        reply = await attempt(() => client.pass(registration.password));
      }
      if (reply === LOST) return void ledger.count("registration", "unanswered");
      ledger.replied();
      if (!reply.ok || !reply.lines.includes("Welcome to TOOM!")) {
        registration.outcome = "refused";
        ledger.surprises.push(`registration of ${registration.name}: ${reply.lines.join(" ")}`);
        return;
      }
      registration.outcome = "acked";
      ledger.count("registration", "acked");
    } finally {
      client.close();
    }
  }
}

/** messagelog.txt as `[number, time, author, text]` rows; fails on a line of another shape. */
function parseMessageLog(text: string): Array<[number, string, string, string]> {
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const fields = line.split("; ");
    assert.equal(fields.length, 5, `messagelog.txt line: ${line}`);
    assert.equal(fields[4], "no", `messagelog.txt line: ${line}`);
    return [Number(fields[0]), fields[1]!, fields[2]!, fields[3]!];
  });
}

/** Checks the board after a restart: messagelog.txt, `RDM`, and the posts asked for. */
export function checkBoard(ledger: Ledger, logText: string, rdm: Reply): number {
  const rows = parseMessageLog(logText);
  assert.deepEqual(
    rows.map(([number]) => number),
    rows.map((_, index) => index + 1),
    "messagelog.txt is numbered 1, 2, 3, … without gaps",
  );
  const byToken = new Map<string, number[]>();
  for (const [number, time, author, text] of rows) {
    const token = /^(post-\d+-\w+-\d+) from (\w+)$/.exec(text);
    assert.ok(token, `a post nobody made: ${text}`);
    const post = ledger.posts.get(token[1]!);
    assert.ok(post && post.author === author && token[2] === author, `a post nobody made: ${text}`);
    assert.notEqual(post.outcome, "refused", `a refused post is on the board: ${text}`);
    if (post.outcome === "acked") {
      assert.deepEqual(
        [number, time],
        [post.number, post.time],
        `${text} kept its number and time`,
      );
    }
    byToken.set(post.token, [...byToken.get(post.token) ?? [], number]);
  }
  for (const [token, numbers] of byToken) {
    assert.equal(
      numbers.length,
      1,
      `${token} is on the board once, not at #${numbers.join(", #")}`,
    );
  }
  for (const post of ledger.posts.values()) {
    if (post.outcome === "acked") {
      assert.ok(byToken.has(post.token), `acknowledged post ${post.token} (#${post.number}) lost`);
    }
  }
  // RDM shows the same board.
  assert.ok(rdm.ok, rdm.lines.join(" "));
  const shown = rows.length === 0 ? [`No new message since ${BEFORE_EVERYTHING}.`] : rows.map((
    [number, time, author, text],
  ) => `#${number}; ${author}: "${text}" posted at ${time}.`);
  assert.deepEqual(rdm.lines, shown, "RDM lists what messagelog.txt holds");
  return rows.length;
}

/**
 * A recipient's login after a restart: collects its offline messages (every one has arrived once
 * a later request's reply has), checks them against what was sent, and probes each sender's block.
 */
export async function collect(
  port: number,
  recipient: string,
  context: { round: number; ledger: Ledger },
): Promise<void> {
  const { round, ledger } = context;
  using client = await loggedIn(port, recipient);
  // Requests are answered in order, after the events queued before them.
  assert.ok((await client.cmd("whoelse")).ok);
  const refs = new Set<string>();
  for (const event of client.events.filter((event) => event.kind === "message")) {
    const line = event.lines.join("\n");
    const match = /^(\w+): (dm-\d+-\w+-\d+) hi$/.exec(line);
    assert.ok(match, `${recipient} got a message nobody sent: ${line}`);
    const message = ledger.direct.get(match[2]!);
    assert.ok(message, `${recipient} got a message nobody sent: ${line}`);
    assert.deepEqual(
      [message.from, message.to, event.data?.from],
      [match[1], recipient, match[1]],
      `${line} reached ${recipient} from ${event.data?.from}`,
    );
    assert.notEqual(message.outcome, "refused", `a refused message was delivered: ${line}`);
    const ref = event.data?.ref;
    assert.ok(typeof ref === "string" && ref !== "", `${line} came without a ref`);
    assert.ok(!refs.has(ref), `${line} came twice at one login (ref ${ref})`);
    refs.add(ref);
    const seen = ledger.delivered.get(message.token) ?? new Map<string, number>();
    ledger.delivered.set(message.token, seen);
    // A copy may come again (same ref) only if the server was killed between handing it over and
    // forgetting it; here the next kill comes a whole round (hundreds of milliseconds) later.
    assert.ok(
      !seen.has(ref),
      `${line} (ref ${ref}), delivered in round ${seen.get(ref)}, came again`,
    );
    seen.set(ref, round);
  }
  for (const sender of SENDERS) {
    const pair = `${sender}>${recipient}`;
    const reply = await client.cmd(`message ${sender} probe-${round}-${recipient}`);
    const blocked = !reply.ok && reply.lines.join("\n") === BLOCKED_TEXT;
    const open = reply.ok &&
      reply.lines.join("\n") ===
        `${sender} is offline; the message will be delivered when they log in.`;
    assert.ok(blocked || open, `${recipient} messaging ${sender}: ${reply.lines.join(" ")}`);
    const expected = ledger.blocks.get(pair) ?? false;
    if (ledger.blocks.has(pair) && ledger.blocks.get(pair) === undefined) {
      ledger.blocks.set(pair, blocked); // It went either way; from now on it is what it is.
    } else {
      assert.equal(
        blocked,
        expected,
        `${sender} ${expected ? "blocked" : "unblocked"} ${recipient}`,
      );
    }
  }
  await client.logOut();
}

/** Checks every offline message sent so far: acknowledged ones delivered under exactly one ref. */
export function checkDeliveries(
  ledger: Ledger,
): { acked: number; unanswered: number; came: number } {
  let acked = 0, unanswered = 0, came = 0;
  for (const message of ledger.direct.values()) {
    const refs = ledger.delivered.get(message.token)?.size ?? 0;
    if (message.outcome === "acked") {
      acked++;
      assert.equal(refs, 1, `acknowledged ${message.token} to ${message.to}: ${refs} ref(s)`);
    } else {
      assert.ok(refs <= 1, `${message.token} (${message.outcome}) came under ${refs} refs`);
      if (message.outcome === "unanswered") {
        unanswered++;
        came += refs;
      }
    }
  }
  return { acked, unanswered, came };
}

/**
 * Logs in as a registered account: an acknowledged one must exist with its password; an
 * unanswered one may be missing (then nothing is sent: the login would register it) or must take
 * its password. Resolves to whether it exists.
 */
export async function checkRegistration(
  port: number,
  registration: Registration,
): Promise<boolean> {
  using client = await RawClient.connect(port);
  const asked = await client.user(registration.name);
  assert.ok(asked.ok, asked.lines.join(" "));
  if (asked.data?.need === "new-password") {
    assert.notEqual(registration.outcome, "acked", `acknowledged ${registration.name} was lost`);
    return false;
  }
  assert.deepEqual(asked.data, { need: "password" });
  assert.notEqual(registration.outcome, "refused", `refused ${registration.name} exists`);
  const welcome = await client.pass(registration.password);
  assert.ok(welcome.ok, `${registration.name} cannot log in: ${welcome.lines.join(" ")}`);
  return true;
}
