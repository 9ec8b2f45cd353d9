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
    maxFileBytes: 4 * 1024 ** 3,
    ca: undefined,
    noTls: false,
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

Deno.test("parseClientArgs() reads --ca and --no-tls, which do not go together", () => {
  const ca = clientArgs(["localhost", "5000", "0", "--ca", "/etc/toom/ca.pem"]);
  assert.deepEqual([ca.ca, ca.noTls], ["/etc/toom/ca.pem", false]);
  const plain = clientArgs(["localhost", "5000", "0", "--no-tls"]);
  assert.deepEqual([plain.ca, plain.noTls], [undefined, true]);
  assert.equal(
    exited(parseClientArgs(["localhost", "5000", "0", "--no-tls", "--ca=ca.pem"])).stderr,
    `--ca and --no-tls cannot be combined\n${CLIENT_USAGE}\n`,
  );
});

Deno.test("parseClientArgs() lists the TLS options and the pin file in its help", () => {
  const help = exited(parseClientArgs(["--help"])).stdout!;
  for (const text of ["--ca FILE", "--no-tls", "known_servers"]) assert.ok(help.includes(text));
});

Deno.test("parseClientArgs() reads --max-file-size in bytes or K, M, G, T (powers of 1024)", () => {
  const max = (size: string) =>
    clientArgs(["localhost", "5000", "0", "--max-file-size", size]).maxFileBytes;
  assert.equal(max("1048576"), 1_048_576);
  assert.equal(max("500M"), 500 * 1024 ** 2);
  assert.equal(max("4G"), 4 * 1024 ** 3);
  assert.equal(max("4GiB"), 4 * 1024 ** 3);
  assert.equal(max("4gb"), 4 * 1024 ** 3);
  assert.equal(max("1.5G"), 1.5 * 1024 ** 3);
  assert.equal(max("64k"), 65_536);
  assert.equal(max("2T"), 2 * 1024 ** 4);
  assert.equal(max("0"), 0);
  for (const bad of ["", "big", "-1", "4X", "4 G B", "1e9", "4iB", "9999999P"]) {
    assert.match(
      exited(parseClientArgs(["localhost", "5000", "0", `--max-file-size=${bad}`])).stderr!,
      /^Invalid --max-file-size: .* \(e\.g\. 500M, 4G\)\n/,
      bad,
    );
  }
  assert.ok(exited(parseClientArgs(["--help"])).stdout!.includes("--max-file-size SIZE"));
});

Deno.test("parseClientArgs() accepts UDP port 0 and host names", () => {
  assert.deepEqual(clientArgs(["chat.example.com", "65535", "0"]), {
    serverHost: "chat.example.com",
    serverPort: 65535,
    udpPort: 0,
    downloadDir: ".",
    noBell: false,
    reconnectForMs: 120_000,
    maxFileBytes: 4 * 1024 ** 3,
    ca: undefined,
    noTls: false,
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
  ["a missing --ca value", ["127.0.0.1", "5000", "6666", "--ca"]],
  ["--ca with --no-tls", ["127.0.0.1", "5000", "6666", "--ca", "ca.pem", "--no-tls"]],
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
