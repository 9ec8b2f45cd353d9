/**
 * The client's peer-to-peer layer (lib/client/p2p.ts) in whole clients: runClient with the p2p
 * extension, against the real server core over in-memory connections, peers on an in-memory UDP
 * network whose sockets can be frozen, and engine timers on a clock the test moves.
 */
import assert from "node:assert/strict";
import { runClient } from "../../lib/client/app.ts";
import { expandHome, p2pExtension } from "../../lib/client/p2p.ts";
import { RecentIds } from "../../lib/client/recent_ids.ts";
import type { LineKind, StatusRender, Terminal } from "../../lib/client/terminal.ts";
import { MemoryNetwork, UdpSocket } from "../../lib/p2p/mod.ts";
import { memoryPair } from "../../lib/shared/transport.ts";
import { FreezableSocket, ManualClock, settle } from "../../testing/p2p_fixture.ts";
import { PASSWORDS, startServer, type TestServer } from "../../testing/server_fixture.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const CAN_USE_FILES = Deno.permissions.querySync({ name: "read" }).state === "granted" &&
  Deno.permissions.querySync({ name: "write" }).state === "granted";
if (!CAN_USE_FILES) console.log("(UPD tests ignored: they need --allow-read --allow-write)");

/** A terminal the test types into, recording what is printed (with its kind) and the status lines. */
class TestTerminal implements Terminal {
  readonly printed: Array<{ line: string; kind: LineKind | undefined }> = [];
  readonly statuses = new Map<string, StatusRender>();
  readonly #typed: Array<string | null> = [];
  #waiting: ((line: string | null) => void) | undefined;
  #closed = false;

  constructor(readonly interactive = false) {}

  /** Types a line (null: end of input). */
  type(line: string | null): void {
    if (this.#waiting) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      waiting(line);
    } else {
      this.#typed.push(line);
    }
  }

  readLine(): Promise<string | null> {
    if (this.#closed) return Promise.resolve(null);
    if (this.#typed.length > 0) return Promise.resolve(this.#typed.shift()!);
    return new Promise((resolve) => this.#waiting = resolve);
  }

  readSecret(): Promise<string | null> {
    return this.readLine();
  }

  print(line: string, kind?: LineKind): void {
    this.printed.push({ line, kind });
  }

  status(key: string, render: StatusRender | null): void {
    if (render) this.statuses.set(key, render);
    else this.statuses.delete(key);
  }

  close(): void {
    this.#closed = true;
    this.type(null);
  }

  get lines(): string[] {
    return this.printed.map((p) => p.line);
  }

  /** How many printed lines contain `text`. */
  count(text: string): number {
    return this.lines.filter((line) => line.includes(text)).length;
  }

  /** Waits until `times` printed lines contain `text` (a failsafe fails the test after 5 s). */
  async waitFor(text: string, times = 1): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (this.count(text) < times) {
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for "${text}"; printed:\n${this.lines.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/** A whole client: runClient with the p2p extension, logged in. Disposing it logs it out. */
interface Client extends AsyncDisposable {
  terminal: TestTerminal;
  socket: FreezableSocket;
}

interface ClientOptions {
  interactive?: boolean;
  downloadDir?: string;
  home?: string;
  /** A real UDP socket on 127.0.0.1 instead of one on the in-memory network. */
  udp?: boolean;
  maxFileBytes?: number;
}

async function client(
  test: TestServer,
  net: { network: MemoryNetwork; clock: ManualClock },
  user: string,
  options: ClientOptions = {},
): Promise<Client> {
  const socket = new FreezableSocket(
    options.udp ? new UdpSocket({ hostname: "127.0.0.1", port: 0 }) : net.network.socket(),
  );
  const terminal = new TestTerminal(options.interactive);
  const extension = p2pExtension({
    socket,
    terminal,
    downloadDir: options.downloadDir ?? "/nonexistent",
    engine: { clock: net.clock, messageRetryMs: 250, messageGiveUpMs: 2_500 },
    ...(options.home !== undefined ? { home: options.home } : {}),
    ...(options.maxFileBytes !== undefined ? { maxFileBytes: options.maxFileBytes } : {}),
  });
  const [clientEnd, serverEnd] = memoryPair();
  void test.server.handle(serverEnd);
  terminal.type(user);
  terminal.type(PASSWORDS[user]!);
  const exit = runClient({
    conn: clientEnd,
    terminal,
    udpPort: socket.localAddress.port,
    heartbeatMs: 3_600_000,
    extension,
  });
  await terminal.waitFor("Welcome to TOOM!");
  return {
    terminal,
    socket,
    async [Symbol.asyncDispose]() {
      socket.thaw();
      terminal.close();
      await exit;
    },
  };
}

/** yoda and hans logged in, with a private session between them. */
async function privatePair(test: TestServer, net: { network: MemoryNetwork; clock: ManualClock }) {
  const yoda = await client(test, net, "yoda", { interactive: true });
  const hans = await client(test, net, "hans");
  yoda.terminal.type("startprivate hans");
  await hans.terminal.waitFor("yoda would like to private message, enter y or n:");
  hans.terminal.type("y");
  await yoda.terminal.waitFor("Start private messaging with hans");
  await hans.terminal.waitFor("Start private messaging with yoda");
  return { yoda, hans };
}

function network() {
  return { network: new MemoryNetwork(), clock: new ManualClock() };
}

Deno.test("a private message relayed through the server is shown once when its direct copy arrives late", async () => {
  await using test = await startServer();
  const net = network();
  const { yoda, hans } = await privatePair(test, net);
  await using _yoda = yoda;
  await using _hans = hans;

  // hans is frozen: the datagrams wait in his socket; yoda gives up and relays.
  hans.socket.freeze();
  yoda.terminal.type("private hans are you there?");
  await settle();
  await net.clock.advance(2_500);
  await yoda.terminal.waitFor("hans could not be reached directly");
  await hans.terminal.waitFor("yoda: are you there?");

  // hans wakes up: the direct copies (the first try and its retries) arrive after all.
  hans.socket.thaw();
  yoda.terminal.type("private hans marker");
  await hans.terminal.waitFor("yoda(private): marker");
  assert.equal(hans.terminal.count("are you there?"), 1, hans.terminal.lines.join("\n"));
});

Deno.test("a private message shown directly is not shown again when its relayed copy arrives", async () => {
  await using test = await startServer();
  const net = network();
  const { yoda, hans } = await privatePair(test, net);
  await using _yoda = yoda;
  await using _hans = hans;

  // yoda is frozen: hans gets the message, but his acknowledgements wait in yoda's socket.
  yoda.socket.freeze();
  yoda.terminal.type("private hans hello again");
  await hans.terminal.waitFor("yoda(private): hello again");
  await net.clock.advance(2_500);
  await yoda.terminal.waitFor("hans could not be reached directly");
  yoda.socket.thaw();
  yoda.terminal.type("message hans marker");
  await hans.terminal.waitFor("yoda: marker");
  assert.equal(hans.terminal.count("hello again"), 1, hans.terminal.lines.join("\n"));
});

Deno.test("a ref is one sender's: the same ref from someone else, and no ref at all, are shown", async () => {
  await using test = await startServer();
  const net = network();
  await using hans = await client(test, net, "hans");
  const vader = test.connect();
  await vader.login("vader", "sithlord");
  const obiwan = test.connect();
  await obiwan.login("obiwan", "hellothere");
  const ref = "0000000000000001";
  await vader.link.request({ t: "cmd", line: "message hans first", ref });
  await vader.link.request({ t: "cmd", line: "message hans copy", ref });
  await obiwan.link.request({ t: "cmd", line: "message hans same ref, other sender", ref });
  await vader.cmd("message hans no ref");
  await vader.cmd("message hans no ref");
  await vader.cmd("message hans marker");
  await hans.terminal.waitFor("vader: marker");
  assert.equal(hans.terminal.count("vader: first"), 1);
  assert.equal(hans.terminal.count("vader: copy"), 0, "the same ref from vader is a copy");
  assert.equal(hans.terminal.count("obiwan: same ref, other sender"), 1);
  assert.equal(hans.terminal.count("vader: no ref"), 2);
});

Deno.test("a private message of 700 é (1,400 bytes of UTF-8) arrives whole instead of crashing", async () => {
  await using test = await startServer();
  const net = network();
  const { yoda, hans } = await privatePair(test, net);
  await using _yoda = yoda;
  await using _hans = hans;
  const text = "é".repeat(700);
  yoda.terminal.type(`private hans ${text}`);
  await hans.terminal.waitFor(`yoda(private): ${text}`);
  const longest = "😀".repeat(1000);
  yoda.terminal.type(`private hans ${longest}`);
  await hans.terminal.waitFor(`yoda(private): ${longest}`);
  assert.equal(yoda.terminal.printed.filter((p) => p.kind === "error").length, 0);
});

Deno.test("on a terminal a sent private message is echoed as one's own; piped output stays as it was", async () => {
  await using test = await startServer();
  const net = network();
  const { yoda, hans } = await privatePair(test, net);
  await using _yoda = yoda;
  await using _hans = hans;
  yoda.terminal.type("private hans on a terminal");
  await yoda.terminal.waitFor("→ hans(private): on a terminal");
  assert.deepEqual(yoda.terminal.printed.at(-1), {
    line: "→ hans(private): on a terminal",
    kind: "own",
  });
  hans.terminal.type("private yoda from a pipe");
  await yoda.terminal.waitFor("hans(private): from a pipe");
  hans.terminal.type("whoelse");
  await hans.terminal.waitFor("yoda");
  assert.equal(hans.terminal.lines.some((line) => line.startsWith("→")), false);
});

Deno.test({
  name: "UPD sends a quoted name with spaces and a ~ path; both ends show the same safe name",
  ignore: !CAN_USE_FILES,
  async fn() {
    await using test = await startServer();
    await using home = await tempDir("toom-home-");
    await using downloads = await tempDir("toom-downloads-");
    const net = network();
    await using yoda = await client(test, net, "yoda", { home: home.path });
    await using hans = await client(test, net, "hans", { downloadDir: downloads.path });
    await Deno.writeTextFile(`${home.path}/my notes.txt`, "the plans");
    await Deno.writeTextFile(`${home.path}/it's here.txt`, "more plans");

    yoda.terminal.type(`UPD hans "~/my notes.txt"`);
    await yoda.terminal.waitFor("~/my notes.txt has been uploaded");
    await hans.terminal.waitFor("Received my notes.txt from yoda");
    assert.ok(hans.terminal.lines.includes("Receiving my notes.txt from yoda..."));
    assert.equal(await Deno.readTextFile(`${downloads.path}/yoda_my notes.txt`), "the plans");

    yoda.terminal.type(String.raw`UPD hans ~/it\'s\ here.txt`);
    await hans.terminal.waitFor("Received it's here.txt from yoda");
    assert.equal(await Deno.readTextFile(`${downloads.path}/yoda_it's here.txt`), "more plans");

    yoda.terminal.type(`UPD hans 'missing file.txt'`);
    await yoda.terminal.waitFor("Error. File missing file.txt does not exist");
    yoda.terminal.type(`UPD hans "unclosed.txt`);
    await yoda.terminal.waitFor("File name has an unclosed quote. Usage: UPD <user> <filename>");
  },
});

Deno.test({
  name: "UPD refuses a file name with control or invisible formatting characters before asking",
  ignore: !CAN_USE_FILES,
  async fn() {
    await using test = await startServer();
    await using home = await tempDir("toom-home-");
    const net = network();
    await using yoda = await client(test, net, "yoda", { home: home.path });
    await using hans = await client(test, net, "hans");
    const refusal = "Error. File names cannot contain control or invisible formatting characters.";
    const names = ["evil\u202etxt.exe", "zero\u200bwidth.txt", "esc\u001b[2J.txt"];
    for (const [i, name] of names.entries()) {
      await Deno.writeTextFile(`${home.path}/${name}`, "x");
      yoda.terminal.type(`UPD hans ~/${name}`);
      await yoda.terminal.waitFor(refusal, i + 1);
    }
    assert.equal(test.logger.lines.filter((line) => line.includes("over UDP")).length, 0);
    assert.equal(hans.terminal.count("Receiving"), 0);
  },
});

Deno.test({
  name: "block stops a file coming from the blocked user over real UDP; both sides are told why",
  ignore: !CAN_USE_FILES,
  async fn() {
    await using test = await startServer();
    await using home = await tempDir("toom-home-");
    await using downloads = await tempDir("toom-downloads-");
    const net = network();
    await using yoda = await client(test, net, "yoda", { home: home.path, udp: true });
    await using hans = await client(test, net, "hans", { downloadDir: downloads.path, udp: true });
    await Deno.writeTextFile(`${home.path}/plans.txt`, "the death star plans");

    // hans's process is busy: yoda's offer waits in his socket while he blocks yoda.
    hans.socket.freeze();
    yoda.terminal.type("UPD hans ~/plans.txt");
    await hans.terminal.waitFor("Receiving plans.txt from yoda...");
    hans.terminal.type("block yoda");
    await hans.terminal.waitFor("yoda is blocked");
    await hans.terminal.waitFor("Stopped receiving plans.txt from yoda: you blocked yoda.");
    await yoda.terminal.waitFor(
      "Your file transfer of plans.txt to hans was stopped: hans has blocked you.",
    );
    // The offer that was waiting arrives now and is refused: the ticket is revoked.
    hans.socket.thaw();
    yoda.terminal.type("whoelse");
    await yoda.terminal.waitFor("No other user is online.");
    await settle();
    assert.deepEqual([...Deno.readDirSync(downloads.path)], []);
    assert.equal(hans.terminal.count("Received"), 0);
    assert.equal(hans.terminal.count("failed"), 0, hans.terminal.lines.join("\n"));
    assert.equal(yoda.terminal.count("failed"), 0, yoda.terminal.lines.join("\n"));
    assert.equal(yoda.terminal.count("has been uploaded"), 0);
  },
});

Deno.test({
  name: "an offer over --max-file-size is refused over real UDP; both ends say why",
  ignore: !CAN_USE_FILES,
  async fn() {
    await using test = await startServer();
    await using home = await tempDir("toom-home-");
    await using downloads = await tempDir("toom-downloads-");
    const net = network();
    await using yoda = await client(test, net, "yoda", { home: home.path, udp: true });
    await using hans = await client(test, net, "hans", {
      downloadDir: downloads.path,
      udp: true,
      maxFileBytes: 4096,
    });
    await Deno.writeFile(`${home.path}/big.iso`, new Uint8Array(5 * 1024));
    yoda.terminal.type("UPD hans ~/big.iso");
    await hans.terminal.waitFor(
      "Refused big.iso from yoda: 5.0 KiB is over the 4.0 KiB limit (--max-file-size).",
    );
    await yoda.terminal.waitFor(
      "Uploading ~/big.iso to hans failed: hans refused it (5.0 KiB is over the 4.0 KiB limit)",
    );
    assert.deepEqual([...Deno.readDirSync(downloads.path)], []);
    assert.equal(hans.terminal.printed.at(-1)?.kind, "error");
  },
});

Deno.test("expandHome() puts the home directory in for a leading ~ only", () => {
  assert.equal(expandHome("~/notes.txt", "/home/yoda"), "/home/yoda/notes.txt");
  assert.equal(expandHome("~", "/home/yoda/"), "/home/yoda");
  assert.equal(expandHome("notes~.txt", "/home/yoda"), "notes~.txt");
  assert.equal(expandHome("~hans/notes.txt", "/home/yoda"), "~hans/notes.txt");
  assert.equal(expandHome("/tmp/~/x", "/home/yoda"), "/tmp/~/x");
  assert.throws(() => expandHome("~/x", undefined), /Cannot expand ~ in ~\/x/);
});

Deno.test("RecentIds remembers the last ids up to its limit and forgets the oldest first", () => {
  const ids = new RecentIds(3);
  assert.equal(ids.firstTime("a"), true);
  assert.equal(ids.firstTime("a"), false);
  for (const id of ["b", "c", "d"]) assert.equal(ids.firstTime(id), true);
  assert.equal(ids.size, 3);
  assert.equal(ids.has("a"), false, "the oldest was forgotten");
  assert.equal(ids.firstTime("d"), false);
  assert.equal(ids.firstTime("a"), true);
});
