/** chat-client's command line: arguments, options, help and exit statuses. */
import assert from "node:assert/strict";
import { type CliExit, isExit, VERSION } from "../../lib/shared/cli.ts";
import { CLIENT_USAGE, type ClientArgs, parseClientArgs } from "../../lib/client/args.ts";

function clientArgs(argv: string[]): ClientArgs {
  const parsed = parseClientArgs(argv);
  assert.ok(!isExit(parsed), `exited: ${JSON.stringify(parsed)}`);
  return parsed;
}

function exited(parsed: ClientArgs | CliExit): CliExit {
  assert.ok(isExit(parsed), `did not exit: ${JSON.stringify(parsed)}`);
  return parsed;
}

Deno.test("parseClientArgs() reads the three positionals with the default download dir", () => {
  assert.deepEqual(clientArgs(["127.0.0.1", "5000", "6666"]), {
    serverHost: "127.0.0.1",
    serverPort: 5000,
    udpPort: 6666,
    downloadDir: ".",
    noBell: false,
    reconnectForMs: 120_000,
  });
});

Deno.test("parseClientArgs() reads --download-dir", () => {
  assert.equal(
    clientArgs(["localhost", "5000", "0", "--download-dir", "/tmp/in"]).downloadDir,
    "/tmp/in",
  );
  assert.equal(clientArgs(["--download-dir=d", "localhost", "5000", "0"]).downloadDir, "d");
});

Deno.test("parseClientArgs() reads --no-bell", () => {
  assert.equal(clientArgs(["localhost", "5000", "0", "--no-bell"]).noBell, true);
  assert.equal(clientArgs(["localhost", "5000", "0"]).noBell, false);
});

Deno.test("parseClientArgs() reads --reconnect-for in seconds, 0 meaning never", () => {
  assert.equal(
    clientArgs(["localhost", "5000", "0", "--reconnect-for", "30"]).reconnectForMs,
    30_000,
  );
  assert.equal(clientArgs(["localhost", "5000", "0", "--reconnect-for=0"]).reconnectForMs, 0);
  assert.match(
    exited(parseClientArgs(["localhost", "5000", "0", "--reconnect-for", "soon"])).stderr!,
    /Invalid --reconnect-for: soon/,
  );
});

Deno.test("parseClientArgs() accepts UDP port 0 and host names", () => {
  assert.deepEqual(clientArgs(["chat.example.com", "65535", "0"]), {
    serverHost: "chat.example.com",
    serverPort: 65535,
    udpPort: 0,
    downloadDir: ".",
    noBell: false,
    reconnectForMs: 120_000,
  });
});

const CLIENT_USAGE_EXITS: [string, string[]][] = [
  ["no arguments", []],
  ["two arguments", ["127.0.0.1", "5000"]],
  ["four arguments", ["127.0.0.1", "5000", "6666", "7777"]],
  ["server port 0", ["127.0.0.1", "0", "6666"]],
  ["a non-numeric server port", ["127.0.0.1", "http", "6666"]],
  ["a server port over 65535", ["127.0.0.1", "65536", "6666"]],
  ["a non-numeric UDP port", ["127.0.0.1", "5000", "udp"]],
  ["a UDP port over 65535", ["127.0.0.1", "5000", "70000"]],
  ["a fractional UDP port", ["127.0.0.1", "5000", "66.6"]],
  ["an empty host", ["", "5000", "6666"]],
  ["a blank host", ["  ", "5000", "6666"]],
  ["an unknown option", ["127.0.0.1", "5000", "6666", "--verbose"]],
  ["a missing --download-dir value", ["127.0.0.1", "5000", "6666", "--download-dir"]],
];

for (const [what, argv] of CLIENT_USAGE_EXITS) {
  Deno.test(`parseClientArgs() exits 2 with the usage for ${what}`, () => {
    const result = exited(parseClientArgs(argv));
    assert.equal(result.exit, 2);
    assert.equal(result.stdout, undefined);
    assert.ok(result.stderr?.endsWith(CLIENT_USAGE + "\n"), result.stderr);
  });
}

for (const flag of ["--help", "-h"]) {
  Deno.test(`parseClientArgs() prints help for ${flag} and exits 0`, () => {
    const result = exited(parseClientArgs([flag]));
    assert.equal(result.exit, 0);
    const stdout = result.stdout ?? "";
    assert.ok(stdout.startsWith(CLIENT_USAGE + "\n"));
    assert.ok(stdout.includes("--download-dir"));
  });
}

Deno.test("parseClientArgs() prints the version for --version and exits 0", () => {
  assert.deepEqual(parseClientArgs(["--version"]), {
    exit: 0,
    stdout: `chat-client ${VERSION}\n`,
  });
});
