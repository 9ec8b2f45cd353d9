/**
 * End-to-end over TLS: the built chat-server and chat-client, with a relay in between that keeps
 * every byte an eavesdropper would see; the certificate pinned on first use and a changed one
 * refused, at the start and on reconnecting; and --no-tls on both sides, or on one.
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
import { startRelay } from "../testing/relay.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { TestClient } from "../testing/server_fixture.ts";
import { connectPlain, connectTls } from "../lib/client/tls_connect.ts";
import { MemoryKnownServers } from "../lib/client/known_servers.ts";
import type { Connection } from "../lib/shared/transport.ts";
import { parseTicket } from "../lib/p2p/mod.ts";
import { COMMAND_PROMPT } from "../lib/shared/commands.ts";

const CREDENTIALS = "yoda jedi\nvader sithlord\nhans falcon\n";
const FINGERPRINT = /TLS certificate SHA-256 fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})\n/;

const e2e = programTests("TLS end-to-end tests");

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

const text = (value: string) => new TextEncoder().encode(value);

/**
 * Logs two real clients in through the relay and has a scripted one (whose own end of the link
 * shows what was sent) offer a file, so that tickets with their keys travel to both peers.
 * Returns the ticket's key.
 */
async function chatThroughRelay(
  server: Awaited<ReturnType<typeof startServerProgram>>,
  relayPort: number,
  plain: boolean,
): Promise<string> {
  const extra = plain ? ["--no-tls"] : [];
  await using yoda = await loggedInClient(server, "yoda", "jedi", extra, { port: relayPort });
  await using hans = await loggedInClient(server, "hans", "falcon", extra, { port: relayPort });
  const conn: Connection = plain ? await connectPlain("127.0.0.1", relayPort) : await connectTls({
    hostname: "127.0.0.1",
    port: relayPort,
    knownServers: new MemoryKnownServers(),
  });
  using vader = new TestClient(conn);
  assert.equal((await vader.login("vader", "sithlord")).ok, true);
  const offer = await vader.cmd("UPD hans plans.txt");
  assert.equal(offer.ok, true, offer.lines.join(" "));
  const ticket = parseTicket(offer.data?.ticket);
  await yoda.type("message hans the password is not in here");
  await hans.waitFor("yoda: the password is not in here");
  await yoda.type("OUT");
  await yoda.waitFor("Bye, yoda!");
  assert.equal(await yoda.exit(), 0);
  return ticket.key;
}

Deno.test({
  name: "over TLS an eavesdropper sees neither passwords nor peer-to-peer keys; in plain, both",
  ...e2e,
  async fn() {
    for (const plain of [false, true]) {
      await using server = await startServerProgram(CREDENTIALS, plain ? ["3", "--no-tls"] : ["3"]);
      await using relay = startRelay(server.port);
      const key = await chatThroughRelay(server, relay.port, plain);
      await relay.close();
      const seen = relay.captured();
      assert.ok(seen.length > 1000, `the relay carried the sessions (${seen.length} bytes)`);
      const secrets: [string, Uint8Array][] = [
        ["yoda's password", text('"jedi"')],
        ["hans's password", text("falcon")],
        ["vader's password", text("sithlord")],
        ["the ticket key (base64)", text(key)],
        ["a direct message", text("the password is not in here")],
      ];
      for (const [what, secret] of secrets) {
        assert.equal(
          contains(seen, secret),
          plain,
          `${what} ${plain ? "should cross in the clear with --no-tls" : "crossed in the clear"}`,
        );
      }
      // The key travels in base64 only; its bytes must not show up either way.
      const keyBytes = Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
      assert.equal(contains(seen, keyBytes), false, "the ticket key's bytes");
    }
  },
});

Deno.test({
  name: "the client pins the certificate on first use, saying so on stderr only, and refuses " +
    "another one at once and on reconnecting, with the fingerprints and the line to remove",
  ...e2e,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await server.program.waitFor(FINGERPRINT);
    const first = FINGERPRINT.exec(server.program.stdout)?.[1];
    assert.ok(first, server.program.stdout);
    assert.match(server.program.stdout, /^TOOM server listening on port \d+ \(0\.0\.0\.0:\d+\)\n/);
    assert.match(await server.read("toom-cert.pem"), /^-----BEGIN CERTIFICATE-----/);
    assert.equal((await Deno.stat(`${server.dir}/toom-key.pem`)).mode! & 0o777, 0o600);

    await using config = await tempDir("toom-config-");
    const env = { XDG_CONFIG_HOME: config.path };
    const pins = `${config.path}/toom/known_servers`;
    await using yoda = await loggedInClient(server, "yoda", "jedi", ["--reconnect-for", "30"], {
      env,
    });
    // stdout is exactly as without TLS; the notice is on stderr.
    assert.equal(yoda.stdout, `Username: \nPassword: \nWelcome to TOOM!\n${COMMAND_PROMPT}\n`);
    assert.match(yoda.stderr, new RegExp(`First connection to 127\\.0\\.0\\.1:${server.port}: `));
    assert.ok(yoda.stderr.includes(`SHA-256 fingerprint: ${first}\n`), yoda.stderr);
    assert.ok(yoda.stderr.includes(`It is saved in ${pins}`), yoda.stderr);
    const line = `127.0.0.1:${server.port} ${first}`;
    assert.deepEqual((await Deno.readTextFile(pins)).split("\n").slice(1), [line, ""]);
    assert.equal((await Deno.stat(pins)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${config.path}/toom`)).mode! & 0o777, 0o700);

    // A second client with the same configuration: accepted silently. (It does not reconnect, so
    // it cannot race the later client that logs in as hans once the pin is removed.)
    await using hans = await loggedInClient(server, "hans", "falcon", ["--reconnect-for", "0"], {
      env,
    });
    assert.equal(hans.stderr, "");

    // The server is replaced by another, with a certificate of its own, on the same port.
    await server.crash();
    await using elsewhere = await tempDir("toom-e2e-other-");
    await Deno.writeTextFile(`${elsewhere.path}/credentials.txt`, CREDENTIALS);
    await using impostor = new Program(SERVER_BIN, [String(server.port), "3"], {
      cwd: elsewhere.path,
    });
    await impostor.waitFor(FINGERPRINT);
    const second = FINGERPRINT.exec(impostor.stdout)![1]!;
    assert.notEqual(second, first);

    // The logged-in client, reconnecting, refuses it and ends.
    assert.equal(await yoda.exit(), 1);
    for (
      const expected of [
        "Connection to server lost; reconnecting...\n@@@@",
        "WARNING: THE SERVER'S CERTIFICATE HAS CHANGED. NOTHING WAS SENT TO IT.\n",
        `Pinned:    ${first}\n`,
        `Presented: ${second}\n`,
      ]
    ) assert.ok(yoda.stdout.includes(expected), `${expected}\nin:\n${yoda.stdout}`);

    // A new client refuses it before sending anything: stderr says why, stdout stays empty.
    await using late = await startClientProgram(server, [], { env });
    assert.equal(await late.exit(), 1);
    assert.equal(late.stdout, "");
    for (
      const expected of [
        "WARNING: THE SERVER'S CERTIFICATE HAS CHANGED. NOTHING WAS SENT TO IT.",
        `Pinned:    ${first}\n`,
        `Presented: ${second}\n`,
        `remove line 2 of ${pins} (the line that starts with "127.0.0.1:${server.port} ")`,
      ]
    ) assert.ok(late.stderr.includes(expected), `${expected}\nin:\n${late.stderr}`);
    // Nobody logged in to the other server.
    assert.equal(await Deno.readTextFile(`${elsewhere.path}/userlog.txt`), "");

    // Accepting the new certificate as the message says: with the line removed, it is pinned.
    await Deno.writeTextFile(pins, (await Deno.readTextFile(pins)).replace(line + "\n", ""));
    await using again = await loggedInClient(server, "hans", "falcon", [], { env });
    assert.ok(again.stderr.includes(`SHA-256 fingerprint: ${second}\n`), again.stderr);
    assert.ok((await Deno.readTextFile(pins)).endsWith(`127.0.0.1:${server.port} ${second}\n`));
    impostor.kill("SIGINT");
    assert.equal(await impostor.exit(), 0);
  },
});

Deno.test({
  name: "--no-tls on both sides works; on one side only, each says what to do",
  ...e2e,
  async fn() {
    await using plainServer = await startServerProgram(CREDENTIALS, ["3", "--no-tls"]);
    await using yoda = await loggedInClient(plainServer, "yoda", "jedi", ["--no-tls"]);
    assert.doesNotMatch(plainServer.program.stdout, /fingerprint/);
    assert.match(plainServer.program.stderr, /TLS is off \(--no-tls\)/);
    assert.equal(
      (await Array.fromAsync(Deno.readDir(plainServer.dir))).some((e) => e.name.endsWith(".pem")),
      false,
      "no certificate is made",
    );
    await yoda.type("MSG in the clear");
    await yoda.waitFor(/Message #1 posted at /);
    assert.equal(yoda.stderr, "");
    assert.equal(yoda.configDir && (await Array.fromAsync(Deno.readDir(yoda.configDir))).length, 0);

    // A TLS client (the default) meeting the plain server.
    await using tlsClient = await startClientProgram(plainServer);
    assert.equal(await tlsClient.exit(), 1);
    assert.equal(tlsClient.stdout, "");
    assert.match(
      tlsClient.stderr,
      /does not speak TLS; if it was started with --no-tls, start the client with --no-tls too/,
    );

    // A --no-tls client meeting a TLS server.
    await using tlsServer = await startServerProgram(CREDENTIALS);
    await using plainClient = await startClientProgram(tlsServer, ["--no-tls"]);
    // The client says hello at once, so it finds out before asking for a username.
    assert.equal(await plainClient.exit(), 1);
    assert.match(
      plainClient.stdout,
      /The server speaks TLS, but this client was started with --no-tls; start it without --no-tls\./,
    );
  },
});

Deno.test({
  name: "chat-server says which TLS file is wrong; chat-client says which --ca file is",
  ...e2e,
  async fn() {
    await ensureBuilt();
    await using dir = await tempDir("toom-e2e-tls-");
    const run = async (path: string, args: string[]) => {
      await using program = new Program(path, args, { cwd: dir.path });
      return { code: await program.exit(), stderr: program.stderr, stdout: program.stdout };
    };
    const missing = await run(SERVER_BIN, ["0", "3", "--tls-cert", "no.pem", "--tls-key", "k.pem"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Cannot read the TLS certificate no\.pem: /);
    const half = await run(SERVER_BIN, ["0", "3", "--tls-cert", "c.pem"]);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
    // A lone key file from an earlier start is not silently replaced.
    await Deno.writeTextFile(`${dir.path}/toom-key.pem`, "x");
    const lone = await run(SERVER_BIN, ["0", "3"]);
    assert.equal(lone.code, 1);
    assert.match(lone.stderr, /^toom-key\.pem exists but toom-cert\.pem does not\./);
    const ca = await run(CLIENT_BIN, ["127.0.0.1", "1", "0", "--ca", "nope.pem"]);
    assert.equal(ca.code, 2);
    assert.match(ca.stderr, /^Cannot read --ca nope\.pem: /);
  },
});
