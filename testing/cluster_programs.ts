/**
 * Clusters of the built chat-server for end-to-end tests: several processes on one PostgreSQL
 * database (`--database URL --node-id ID`, port 0 each, each in a directory of its own holding the
 * same credentials.txt), raw protocol clients connected to them, and readings of what they said
 * and wrote (events, userlog.txt, messagelog.txt, ATU, RDM). Everything started is stopped when
 * the cluster is disposed; a test's failsafe kills the processes if it hangs.
 */
import assert from "node:assert/strict";
import { eventually } from "./eventually.ts";
import { postgresTests, sharedPostgres } from "./postgres.ts";
import { failsafe, programTests, type RunningServer, startServerProgram } from "./programs.ts";
import { CREDENTIALS, loggedIn, RawClient, SERVER_ARGS } from "./raw_client.ts";

const PG = postgresTests("cluster end-to-end tests");
const E2E = programTests("cluster end-to-end tests");

/** A test that runs programs on PostgreSQL, failing (and killing them all) after `ms`. */
export function clusterTest(name: string, ms: number, fn: () => Promise<void>): void {
  Deno.test({ name, ...E2E, ignore: PG.ignore || E2E.ignore, fn: () => failsafe(ms, fn) });
}

/** Running nodes of one cluster and the clients connected to them, all stopped when disposed. */
export interface Cluster extends AsyncDisposable {
  /** The database the nodes share. */
  url: string;
  nodes: RunningServer[];
  /** Connects to node `index` (0-based); the client is closed when the cluster is disposed. */
  connect(index: number): Promise<RawClient>;
  /** Connects to node `index` and logs `user` in. */
  login(index: number, user: string): Promise<RawClient>;
}

/**
 * Starts `count` chat-server processes as nodes node-1… of a cluster on the database at `url` (a
 * fresh one on the file's shared server if not given).
 */
export async function startCluster(count: number, url?: string): Promise<Cluster> {
  const database = url ?? await (await sharedPostgres()).createDatabase();
  const clients: RawClient[] = [];
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, index) =>
      startServerProgram(CREDENTIALS, [
        ...SERVER_ARGS,
        "--database",
        database,
        "--node-id",
        `node-${index + 1}`,
      ])),
  );
  const nodes = started.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
  const stop = async () => {
    for (const client of clients) client.close();
    await Promise.all(nodes.map((node) => node.stop()));
  };
  const failed = started.find((result) => result.status === "rejected");
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return {
    url: database,
    nodes,
    async connect(index) {
      const client = await RawClient.connect(nodes[index]!.port);
      clients.push(client);
      return client;
    },
    async login(index, user) {
      const client = await loggedIn(nodes[index]!.port, user);
      clients.push(client);
      return client;
    },
    [Symbol.asyncDispose]: stop,
  };
}

/** The lines of `client`'s events of `kind`. */
export function linesOf(client: RawClient, kind: string): string[] {
  return client.events.filter((event) => event.kind === kind).flatMap((event) => event.lines);
}

/** Waits until `client` has had an event of `kind` with the line `line`. */
export async function heard(client: RawClient, kind: string, line: string): Promise<void> {
  await eventually(`"${line}" (${kind})`, () => linesOf(client, kind).includes(line));
}

/** The file `name` once every node has written the same text and `ready` holds for it. */
export async function sameOnEveryNode(
  nodes: RunningServer[],
  name: "userlog.txt" | "messagelog.txt",
  ready: (text: string) => boolean,
): Promise<string> {
  let texts: string[] = [];
  try {
    return await eventually(`the same ${name} on every node`, async () => {
      texts = await Promise.all(nodes.map((node) => node.read(name).catch(() => "")));
      return texts.every((text) => text === texts[0]) && ready(texts[0]!) ? texts[0] : undefined;
    }, { everyMs: 50 });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen:\n${texts.join("\n--\n")}`);
  }
}

/** The users a userlog.txt lists, in its order. */
export function usersIn(userlog: string): string[] {
  return userlog.split("\n").slice(0, -1).map((line) => line.split("; ")[2]!);
}

/** The users an ATU reply lists. */
export function usersOf(atu: string[]): string[] {
  return atu.filter((line) => line.includes("active since")).map((line) => line.split(", ")[0]!)
    .sort();
}

/** A board line of messagelog.txt, parsed. */
export interface Post {
  number: number;
  author: string;
  text: string;
}

/** messagelog.txt's lines as posts. */
export function postsIn(messagelog: string): Post[] {
  return messagelog.split("\n").slice(0, -1).map((line) => {
    const [number, , author, text] = line.split("; ");
    return { number: Number(number), author: author!, text: text! };
  });
}

/** RDM's reply lines as posts. */
export function postsRead(lines: string[]): Post[] {
  return lines.filter((line) => line.startsWith("#")).map((line) => {
    const match = /^#(\d+); (\w+): "(.*)" (?:posted|edited) at /.exec(line);
    assert.ok(match, line);
    return { number: Number(match[1]), author: match[2]!, text: match[3]! };
  });
}

/** A MSG reply's number and timestamp. */
export function posted(reply: { ok: boolean; lines: string[] }): { number: number; at: string } {
  const match = /^Message #(\d+) posted at (.+)\.$/.exec(reply.lines[0] ?? "");
  assert.ok(reply.ok && match, reply.lines.join(" "));
  return { number: Number(match[1]), at: match[2]! };
}
