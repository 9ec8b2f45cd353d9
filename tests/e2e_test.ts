/**
 * End-to-end: the built chat-server and chat-client, in temporary directories, driven through
 * stdin/stdout, with the files they write checked line by line.
 */
import assert from "node:assert/strict";
import {
  CAN_RUN_PROGRAMS,
  CLIENT_BIN,
  ensureBuilt,
  loggedInClient,
  Program,
  SERVER_BIN,
  startClientProgram,
  startServerProgram,
} from "../testing/programs.ts";
import { tempDir } from "../testing/temp_dir.ts";

const CREDENTIALS = "yoda jedi\nvader sithlord\nhans falcon\nobiwan hellothere\n";
const TIMESTAMP = /\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}/;
if (!CAN_RUN_PROGRAMS) {
  console.log(
    "(end-to-end tests ignored: they need --allow-run --allow-read --allow-write --allow-env; " +
      "run `deno task test`)",
  );
}

const e2e = { ignore: !CAN_RUN_PROGRAMS, sanitizeResources: false, sanitizeOps: false };

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
      await using server = new Program(SERVER_BIN, ["12000", value], { cwd: dir.path });
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
  name: "a client whose server goes away says so and exits 1",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using yoda = await loggedInClient(server, "yoda", "jedi");
    server.program.kill("SIGKILL");
    await server.program.exit();
    await yoda.waitFor("Connection to server lost");
    assert.equal(await yoda.exit(), 1);
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
    await using yoda = await loggedInClient(server, "yoda", "jedi");
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

    // A peer that cannot answer: the message goes through the server instead.
    hans.kill("SIGSTOP");
    let at = yoda.stdout.length;
    await yoda.type("private hans are you there");
    at = await yoda.waitFor("could not be reached directly", at, 20_000);
    hans.kill("SIGCONT");
    await hans.waitFor("yoda: are you there");

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
    await using second = new Program(SERVER_BIN, [String(server.port), "3"], { cwd: server.dir });
    assert.equal(await second.exit(), 1);
    assert.match(second.stderr, /Cannot listen on 0\.0\.0\.0:\d+/);
    assert.deepEqual(
      [await server.read("userlog.txt"), await server.read("messagelog.txt")],
      before,
    );
    assert.match(before[1]!, /still here/);
  },
});
