/**
 * End-to-end: the built chat-server and chat-client, in temporary directories, driven through
 * stdin/stdout, with the files they write checked line by line.
 */
import assert from "node:assert/strict";
import {
  CLIENT_BIN,
  ensureBuilt,
  loggedInClient,
  Program,
  programTests,
  SERVER_BIN,
  startClientProgram,
  startServerProgram,
} from "../testing/programs.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { TestClient } from "../testing/server_fixture.ts";
import { connectTls } from "../lib/client/tls_connect.ts";
import { MemoryKnownServers } from "../lib/client/known_servers.ts";
import { parseTicket, PeerNode, UdpSocket } from "../lib/p2p/mod.ts";

const CREDENTIALS = "yoda jedi\nvader sithlord\nhans falcon\nobiwan hellothere\n";
const TIMESTAMP = /\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}/;
const e2e = programTests("end-to-end tests");

/** The timestamp in the first line of `text` (from `from`) that matches `pattern`. */
function stampAfter(text: string, pattern: RegExp): string {
  const line = text.split("\n").find((l) => pattern.test(l));
  assert.ok(line, `no line matching ${pattern} in:\n${text}`);
  return TIMESTAMP.exec(line)![0];
}

Deno.test({
  name: "chat-server rejects a bad attempt count with the spec's message and status 2",
  ...e2e,
  async fn() {
    await ensureBuilt();
    await using dir = await tempDir();
    for (const value of ["0", "6", "abc"]) {
      await using server = new Program(SERVER_BIN, ["0", value], { cwd: dir.path });
      assert.equal(await server.exit(), 2);
      assert.match(
        server.stdout + server.stderr,
        new RegExp(
          `Invalid number of allowed failed consecutive attempt: ${value}\\. The valid value of argument number is an integer between 1 and 5`,
        ),
      );
    }
    await using noArgs = new Program(SERVER_BIN, [], { cwd: dir.path });
    assert.equal(await noArgs.exit(), 2);
    assert.match(noArgs.stderr, /Usage: chat-server/);
    await using badClient = new Program(CLIENT_BIN, ["127.0.0.1", "notaport", "8000"], {
      cwd: dir.path,
    });
    assert.equal(await badClient.exit(), 2);
    assert.match(badClient.stderr, /Usage: chat-client/);
    await using help = new Program(CLIENT_BIN, ["--help"], { cwd: dir.path });
    assert.equal(await help.exit(), 0);
    assert.match(help.stdout, /--download-dir/);
  },
});

Deno.test({
  name: "a full session: post, edit, delete with renumbering, read, ATU, logout, lockout",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS, ["3", "--block-duration", "1"]);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await using hans = await loggedInClient(server, "hans", "falcon");
    await yoda.waitFor("hans logged in");

    let at = yoda.stdout.length;
    await yoda.type("MSG Hello");
    at = await yoda.waitFor(/Message #1 posted at .*\.\n/, at);
    const first = stampAfter(yoda.stdout, /Message #1 posted at/);

    let hat = hans.stdout.length;
    await hans.type("MSG Hi there");
    hat = await hans.waitFor(/Message #2 posted at .*\.\n/, hat);

    await yoda.type(`EDT #1 ${first} Hello, edited`);
    at = await yoda.waitFor(/Message #1 edited at .*\.\n/, at);
    const edited = stampAfter(yoda.stdout.slice(at - 80), /Message #1 edited at/);

    await hans.type(`DLT #1 ${edited}`);
    hat = await hans.waitFor("Unauthorised to delete Message #1.", hat);

    await hans.type("RDM 01 Jan 2000 00:00:00");
    hat = await hans.waitFor(`#1; yoda: "Hello, edited" edited at ${edited}.`, hat);
    // The reply's lines may arrive in separate reads; wait for the second one too.
    await hans.waitFor(/#2; hans: "Hi there" posted at /);

    await yoda.type(`DLT #1 ${edited}`);
    at = await yoda.waitFor(/Message #1 deleted at .*\.\n/, at);
    await yoda.type("ATU");
    at = await yoda.waitFor(/hans, 127\.0\.0\.1, \d+, active since .*\.\n/, at);

    const messagelog = await server.read("messagelog.txt");
    assert.match(
      messagelog,
      /^1; \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}; hans; Hi there; no\n$/,
    );
    const userlog = (await server.read("userlog.txt")).trimEnd().split("\n");
    assert.equal(userlog.length, 2);
    assert.match(userlog[0]!, /^1; .*; yoda; 127\.0\.0\.1; \d+$/);
    assert.match(userlog[1]!, /^2; .*; hans; 127\.0\.0\.1; \d+$/);

    await yoda.type("OUT");
    await yoda.waitFor("Bye, yoda!", at);
    assert.equal(await yoda.exit(), 0);
    await hans.waitFor("yoda logged out");
    assert.match(await server.read("userlog.txt"), /^1; .*; hans; 127\.0\.0\.1; \d+\n$/);

    // Three wrong passwords block vader; the right one is refused until the block ends.
    await using vader = await startClientProgram(server);
    await vader.waitFor("Username: \n");
    await vader.type("vader");
    for (let i = 0; i < 2; i++) {
      await vader.type("wrong");
      await vader.waitFor("Invalid Password. Please try again");
    }
    await vader.type("wrong");
    await vader.waitFor(
      "Invalid Password. Your account has been blocked. Please try again later",
    );
    assert.equal(await vader.exit(), 1);
    await using again = await startClientProgram(server);
    await again.type("vader");
    await again.type("sithlord");
    await again.waitFor(
      "Your account is blocked due to multiple login failures. Please try again later",
    );
    assert.equal(await again.exit(), 1);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // --block-duration 1
    await using later = await loggedInClient(server, "vader", "sithlord");
    later.kill();
    await later.exit();

    await hans.type("OUT");
    assert.equal(await hans.exit(), 0);
  },
});

Deno.test({
  name: "a killed client is logged out and others are told; end of input logs out cleanly",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await using vader = await loggedInClient(server, "vader", "sithlord");
    yoda.kill("SIGKILL");
    await yoda.exit();
    await vader.waitFor("yoda logged out");
    assert.doesNotMatch(await server.read("userlog.txt"), /yoda/);
    await vader.endInput();
    await vader.waitFor("Bye, vader!");
    assert.equal(await vader.exit(), 0);
  },
});

Deno.test({
  name: "a client told not to reconnect says its server went away and exits 1",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi", ["--reconnect-for", "0"]);
    await server.crash();
    await yoda.waitFor("Connection to server lost\n");
    assert.equal(await yoda.exit(), 1);
    assert.doesNotMatch(yoda.stdout, /reconnecting/);
  },
});

Deno.test({
  name: "a piped client logs in again by itself when its server is killed and restarted",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await yoda.type("MSG before the crash");
    let at = await yoda.waitFor("Message #1 posted at");
    const udpPort = /; yoda; 127\.0\.0\.1; (\d+)\n/.exec(await server.read("userlog.txt"))![1];

    await server.crash();
    at = await yoda.waitFor("Connection to server lost; reconnecting...\n", at);
    // Typed while the server is down: read in order, and carried out once logged in again.
    await yoda.type("MSG typed while the server was down");
    await server.restart();
    at = await yoda.waitFor("Reconnected to the server as yoda.\n", at);
    at = await yoda.waitFor("Message #1 posted at", at);
    await yoda.type("MSG after the restart");
    at = await yoda.waitFor("Message #2 posted at", at);

    // The restarted server's files: the same UDP port, the posts in order.
    assert.match(
      await server.read("userlog.txt"),
      new RegExp(`^1; .*; yoda; 127\\.0\\.0\\.1; ${udpPort}\n$`),
    );
    assert.deepEqual(
      (await server.read("messagelog.txt")).trimEnd().split("\n").map((l) => l.split("; ")[3]),
      ["typed while the server was down", "after the restart"],
    );
    await yoda.type("OUT");
    await yoda.waitFor("Bye, yoda!", at);
    assert.equal(await yoda.exit(), 0);
  },
});

Deno.test({
  name: "300 piped MSG lines are all carried out, in order, none refused for rate",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS, ["3", "--quiet"]);
    await using yoda = await startClientProgram(server);
    const posts = Array.from({ length: 300 }, (_, i) => `MSG post ${i + 1}`);
    // Everything at once, as `chat-client ... < file` would read it.
    await yoda.type(["yoda", "jedi", ...posts].join("\n"));
    await yoda.endInput();
    await yoda.waitFor("Bye, yoda!", 0, 30_000);
    assert.equal(await yoda.exit(), 0);
    assert.doesNotMatch(yoda.stdout, /Too many commands/);
    const numbers = [...yoda.stdout.matchAll(/Message #(\d+) posted at/g)].map((m) => Number(m[1]));
    assert.deepEqual(numbers, posts.map((_, i) => i + 1));
    assert.deepEqual(
      (await server.read("messagelog.txt")).trimEnd().split("\n").map((l) => l.split("; ")[3]),
      posts.map((post) => post.slice(4)),
    );
  },
});

Deno.test({
  name: "an unknown username is asked again, and errors show the usage",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using client = await startClientProgram(server);
    await client.type("darth");
    await client.waitFor("Username does not exist");
    await client.type("yoda");
    await client.type("jedi");
    await client.waitFor("Welcome to TOOM!");
    await client.type("HELLO");
    await client.waitFor("Error. Invalid command!");
    await client.type("RDM yesterday");
    await client.waitFor(/Usage: RDM/);
    await client.type("help");
    await client.waitFor("whoelsesince <seconds>");
    await client.type("logout");
    await client.waitFor("Bye, yoda!");
    assert.equal(await client.exit(), 0);
  },
});

Deno.test({
  name: "three clients: direct, offline and broadcast messages, blocks and presence",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await using vader = await loggedInClient(server, "vader", "sithlord");
    await using hans = await loggedInClient(server, "hans", "falcon");
    await yoda.waitFor("hans logged in");

    await yoda.type("message vader Luke is your son");
    await vader.waitFor("yoda: Luke is your son");
    await yoda.type("message obiwan meet me on Dagobah");
    await yoda.waitFor("obiwan is offline");

    await hans.type("block vader");
    await hans.waitFor("vader is blocked");
    await vader.type("message hans hello");
    await vader.waitFor("Your message could not be delivered as the recipient has blocked you");
    await vader.type("broadcast I am your father");
    await vader.waitFor("Your message could not be delivered to some recipients");
    await yoda.waitFor("vader: I am your father");
    const before = vader.stdout.length;
    await vader.type("whoelse");
    const listed = await vader.waitFor(/^yoda\n/m, before);
    const end = await vader.waitFor("Enter one of the following commands", listed);
    assert.doesNotMatch(vader.stdout.slice(before, end), /^hans$/m);

    await using obiwan = await loggedInClient(server, "obiwan", "hellothere");
    await obiwan.waitFor("yoda: meet me on Dagobah");
    await hans.waitFor("obiwan logged in");

    for (const client of [yoda, vader, hans, obiwan]) await client.type("OUT");
    for (const client of [yoda, vader, hans, obiwan]) assert.equal(await client.exit(), 0);
    assert.equal(await server.read("userlog.txt"), "");
  },
});

Deno.test({
  name: "--timeout logs an idle user out and the client exits",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS, ["3", "--timeout", "1"]);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await yoda.waitFor("You have been logged out due to inactivity", 0, 10_000);
    assert.equal(await yoda.exit(), 0);
    assert.equal(await server.read("userlog.txt"), "");
  },
});

Deno.test({
  name: "--allow-register creates an account and passwd changes its password",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS, ["3", "--allow-register"]);
    await using rey = await startClientProgram(server);
    await rey.type("rey");
    await rey.waitFor("This is a new user. Enter a password:");
    await rey.type("scavenger");
    await rey.waitFor("Welcome to TOOM!");
    await rey.type("passwd");
    await rey.type("scavenger");
    await rey.type("jedi2");
    await rey.type("jedi2");
    await rey.waitFor("Password changed.");
    await rey.type("OUT");
    assert.equal(await rey.exit(), 0);
    const credentials = await server.read("credentials.txt");
    assert.ok(credentials.startsWith(CREDENTIALS));
    assert.match(credentials, /^rey scrypt\$/m);
    await using again = await loggedInClient(server, "rey", "jedi2");
    await again.type("OUT");
    assert.equal(await again.exit(), 0);
  },
});

Deno.test({
  name:
    "UPD sends a file peer to peer, saved as <sender>_<file>, byte-identical, never overwriting",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using home = await tempDir("toom-home-");
    await using yoda = await loggedInClient(server, "yoda", "jedi", [], {
      env: { HOME: home.path },
    });
    await using hans = await loggedInClient(server, "hans", "falcon");
    const content = crypto.getRandomValues(new Uint8Array(65536)).map((b, i) => b ^ i);
    const big = new Uint8Array(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i += content.length) {
      big.set(content.slice(0, big.length - i), i);
    }
    await Deno.writeFile(`${yoda.dir}/report.bin`, big);
    await Deno.writeTextFile(`${hans.dir}/yoda_report.bin`, "already here");

    await yoda.type("UPD hans report.bin");
    await yoda.waitFor("report.bin has been uploaded");
    await hans.waitFor("Received report.bin from yoda");
    assert.equal(await Deno.readTextFile(`${hans.dir}/yoda_report.bin`), "already here");
    assert.deepEqual(await Deno.readFile(`${hans.dir}/yoda_report-1.bin`), big);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(hans.dir))).map((e) => e.name).sort(), [
      "yoda_report-1.bin",
      "yoda_report.bin",
    ]);

    let at = yoda.stdout.length;
    await yoda.type("UPD hans missing.txt");
    at = await yoda.waitFor("Error. File missing.txt does not exist", at);
    await yoda.type("UPD obiwan report.bin");
    at = await yoda.waitFor("obiwan is offline", at);
    await Deno.writeFile(`${yoda.dir}/empty.txt`, new Uint8Array());
    await yoda.type("UPD hans empty.txt");
    await hans.waitFor("Received empty.txt from yoda");
    assert.equal((await Deno.stat(`${hans.dir}/yoda_empty.txt`)).size, 0);

    // A name with spaces, quoted, from the home directory; both ends name it the same way.
    await Deno.writeTextFile(`${home.path}/my notes.txt`, "notes with spaces");
    await yoda.type('UPD hans "~/my notes.txt"');
    await yoda.waitFor("~/my notes.txt has been uploaded", at);
    await hans.waitFor("Receiving my notes.txt from yoda...\n");
    await hans.waitFor("Received my notes.txt from yoda\n");
    assert.equal(await Deno.readTextFile(`${hans.dir}/yoda_my notes.txt`), "notes with spaces");
    assert.match(server.program.stdout, /yoda is sending my notes\.txt to hans over UDP\./);

    for (const client of [yoda, hans]) await client.type("OUT");
    for (const client of [yoda, hans]) assert.equal(await client.exit(), 0);
  },
});

Deno.test({
  name:
    "private messaging with consent given, refused, stopped, and relayed when the peer is unreachable",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await using hans = await loggedInClient(server, "hans", "falcon");
    await using vader = await loggedInClient(server, "vader", "sithlord");

    await yoda.type("private hans too early");
    await yoda.waitFor("Error. Private messaging to hans not enabled");

    await yoda.type("startprivate vader");
    await vader.waitFor("yoda would like to private message, enter y or n:");
    await vader.type("n");
    await yoda.waitFor("vader declined private messaging");

    await yoda.type("startprivate hans");
    await hans.waitFor("yoda would like to private message, enter y or n:");
    await hans.type("y");
    await yoda.waitFor("Start private messaging with hans");
    await yoda.type("private hans the secret plans");
    await hans.waitFor("yoda(private): the secret plans");
    await hans.type("private yoda received");
    await yoda.waitFor("hans(private): received");
    assert.doesNotMatch(server.program.stdout, /secret plans/);

    // A peer that cannot answer: the message goes through the server instead. When the peer
    // wakes up, the direct copies waiting in its socket arrive too; it shows the message once.
    hans.kill("SIGSTOP");
    let at = yoda.stdout.length;
    await yoda.type("private hans are you there");
    at = await yoda.waitFor("could not be reached directly", at, 20_000);
    hans.kill("SIGCONT");
    await hans.waitFor(/yoda(\(private\))?: are you there\n/);
    await yoda.type("private hans marker");
    await hans.waitFor("yoda(private): marker");
    assert.equal(hans.stdout.split("are you there").length - 1, 1, hans.stdout);

    await hans.type("stopprivate yoda");
    await yoda.waitFor("hans stopped private messaging with you");
    await yoda.type("private hans still there?");
    await yoda.waitFor("Error. Private messaging to hans not enabled", at);

    for (const client of [yoda, hans, vader]) await client.type("OUT");
    for (const client of [yoda, hans, vader]) assert.equal(await client.exit(), 0);
  },
});

Deno.test({
  name: "Ctrl+C logs the client out cleanly; --quiet silences the server's command lines",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS, ["3", "--quiet"]);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await yoda.type("MSG quietly");
    await yoda.waitFor("Message #1 posted at");
    yoda.kill("SIGINT");
    await yoda.waitFor("Bye, yoda!");
    assert.equal(await yoda.exit(), 0);
    assert.doesNotMatch(server.program.stdout, /posted MSG/);
    assert.equal(await server.read("userlog.txt"), "");
  },
});

Deno.test({
  name: "a second chat-server on a busy port exits 1 and leaves the running server's files alone",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await yoda.type("MSG still here");
    await yoda.waitFor(/Message #1 posted at /);
    const before = [await server.read("userlog.txt"), await server.read("messagelog.txt")];
    // Data of its own: in the first one's, it would stop at toom.db being in use
    // (tests/store_start_test.ts), before trying the port.
    await using second = new Program(
      SERVER_BIN,
      [String(server.port), "3", "--data-dir", "second"],
      { cwd: server.dir },
    );
    assert.equal(await second.exit(), 1);
    assert.match(second.stderr, /Cannot listen on 0\.0\.0\.0:\d+/);
    assert.deepEqual(
      [await server.read("userlog.txt"), await server.read("messagelog.txt")],
      before,
    );
    assert.match(before[1]!, /still here/);
  },
});

Deno.test({
  name:
    "hostile names and texts from a peer reach other users and the server's log visibly, never raw",
  ...e2e,
  async fn() {
    const ESC = "\u001b[2J";
    const RLO = "\u202e";
    const rlo = "<U+202E>";
    const mallory = `ma${RLO}llory`;
    const shown = `ma${rlo}llory`;
    await using server = await startServerProgram(`${CREDENTIALS}${mallory} pw\n`, [
      "3",
      "--allow-register",
    ]);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    await using hans = await loggedInClient(server, "hans", "falcon");

    // mallory speaks the protocol directly, with its own peer-to-peer engine: it can put into a
    // frame or a datagram whatever a modified client could.
    await using files = await tempDir("toom-mallory-");
    const node = new PeerNode(new UdpSocket({ hostname: "127.0.0.1", port: 0 }), {
      downloadDir: files.path,
    });
    using raw = new TestClient(
      await connectTls({
        hostname: "127.0.0.1",
        port: server.port,
        knownServers: new MemoryKnownServers(),
      }),
    );
    try {
      // A new username with a bidi override is refused (lib/server/names.ts)...
      const refused = await raw.login(`eve${RLO}`, "pw", node.localAddress.port);
      assert.deepEqual(refused.lines, [
        "Username must not contain bidirectional controls (U+202E).",
      ]);
      // ...but an account on file with one still logs in, and shows visibly to everyone.
      await raw.link.request({ t: "user", name: mallory });
      const login = await raw.link.request({
        t: "pass",
        password: "pw",
        udpPort: node.localAddress.port,
      });
      assert.equal(login.ok, true, login.lines.join(" "));
      await yoda.waitFor(`${shown} logged in\n`);
      await hans.waitFor(`${shown} logged in\n`);

      // Texts with control characters are refused by the server; invisible formatting in texts
      // gets through and is shown visibly.
      for (const line of [`message hans ${ESC}`, `broadcast hi\r\nyoda: x`, `MSG ${ESC}`]) {
        const refused = await raw.cmd(line);
        assert.equal(refused.ok, false, line);
        assert.match(refused.lines[0]!, /^Message must not contain control characters\./);
      }
      assert.equal((await raw.cmd(`message hans direct${RLO}txt`)).ok, true);
      await hans.waitFor(`${shown}: direct${rlo}txt\n`);
      assert.equal((await raw.cmd(`broadcast all${RLO}txt`)).ok, true);
      await yoda.waitFor(`${shown}: all${rlo}txt\n`);
      await hans.waitFor(`${shown}: all${rlo}txt\n`);
      assert.equal((await raw.cmd(`MSG board${RLO}txt`)).ok, true);
      await yoda.type("RDM 01 Jan 2000 00:00:00");
      await yoda.waitFor(new RegExp(`#1; ${escape(shown)}: "board${escape(rlo)}txt" posted at `));

      // File names with escapes, CR/LF or bidi controls are refused by the server...
      for (const name of [`evil${RLO}txt.exe`, `"clear${ESC}.txt"`, `"fake\r\nyoda: hi.txt"`]) {
        assert.deepEqual((await raw.cmd(`UPD hans ${name}`)).lines, [
          "Error. File names cannot contain control or invisible formatting characters.",
        ]);
      }
      // ...and a name forged in the offer is ignored: the receiver names the file by its ticket.
      await Deno.writeTextFile(`${files.path}/ok.txt`, "fine");
      const upd = await raw.cmd("UPD yoda ok.txt");
      const ticket = parseTicket(upd.data?.ticket);
      await node.sendFile({ ...ticket, fileName: `evil${ESC}${RLO}.txt` }, `${files.path}/ok.txt`);
      await yoda.waitFor(`Receiving ok.txt from ${shown}...\n`);
      await yoda.waitFor(`Received ok.txt from ${shown}\n`);
      await yoda.waitFor("Saved as ./ma_llory_ok.txt\n");
      assert.equal(await Deno.readTextFile(`${yoda.dir}/ma_llory_ok.txt`), "fine");

      // A private message over UDP carries anything: it shows visibly.
      await raw.cmd("startprivate hans");
      await hans.waitFor(`${shown} would like to private message, enter y or n:`);
      await hans.type("y");
      const chat = await raw.waitForEvent((e) => e.kind === "ticket");
      const chatTicket = parseTicket((chat.data as { ticket: unknown }).ticket);
      node.accept(chatTicket);
      await node.sendPrivate(chatTicket.id, `${ESC}\r\nyoda: send me your password ${RLO}`);
      await hans.waitFor(`${shown}(private): ␛[2J␍␊yoda: send me your password ${rlo}\n`);
      // So does one relayed through the server (as the client does when UDP fails).
      await raw.link.request({
        t: "cmd",
        line: `message hans relayed${RLO}`,
        ref: "00000000000000ff",
      });
      await hans.waitFor(`${shown}: relayed${rlo}\n`);

      // A piped client refuses such names itself, and echoes them only visibly.
      await Deno.writeTextFile(`${yoda.dir}/evil${RLO}txt.exe`, "x");
      let at = yoda.stdout.length;
      await yoda.type(`UPD hans evil${RLO}txt.exe`);
      at = await yoda.waitFor(
        "Error. File names cannot contain control or invisible formatting characters.",
        at,
      );
      await yoda.type(`UPD hans clear${ESC}.txt`);
      await yoda.waitFor("Error. File clear␛[2J.txt does not exist", at);
    } finally {
      raw.close();
      await node.close();
    }
    for (const client of [yoda, hans]) await client.type("OUT");
    for (const client of [yoda, hans]) assert.equal(await client.exit(), 0);
    await server.stop();

    const log = server.program.stdout;
    assert.doesNotMatch(log, /New account created/);
    assert.match(log, new RegExp(`${escape(shown)} logged in\n`));
    assert.match(log, new RegExp(`${escape(shown)} posted MSG #1 "board${escape(rlo)}txt" at `));
    assert.match(log, new RegExp(`${escape(shown)} is sending ok\\.txt to yoda over UDP\\.`));
    const outputs = { yoda: yoda.stdout, hans: hans.stdout, server: log + server.program.stderr };
    for (const [who, output] of Object.entries(outputs)) {
      assert.equal(output.includes("\u001b"), false, `a raw ESC in ${who}'s output`);
      assert.equal(output.includes(RLO), false, `a raw RLO in ${who}'s output`);
      assert.equal(/[\r\u0085\u2028\u2029]/.test(output), false, `a raw line break in ${who}'s`);
    }
  },
});

/** `text` as a literal inside a regular expression. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
