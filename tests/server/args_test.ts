/** chat-server's command line: arguments, options, help and exit statuses. */
import assert from "node:assert/strict";
import { type CliExit, isExit, VERSION } from "../../lib/shared/cli.ts";
import {
  HASH_CREDENTIALS_USAGE,
  type HashCredentialsArgs,
  parseServerArgs,
  SERVER_USAGE,
  type ServerArgs,
} from "../../lib/server/args.ts";

function serverArgs(argv: string[]): ServerArgs {
  const parsed = parseServerArgs(argv);
  assert.ok(
    !isExit(parsed) && !("hashCredentials" in parsed),
    `not a server: ${JSON.stringify(parsed)}`,
  );
  return parsed;
}

function exited(parsed: ServerArgs | HashCredentialsArgs | CliExit): CliExit {
  assert.ok(isExit(parsed), `did not exit: ${JSON.stringify(parsed)}`);
  return parsed;
}

function attemptsMessage(value: string): string {
  return `Invalid number of allowed failed consecutive attempt: ${value}. ` +
    "The valid value of argument number is an integer between 1 and 5\n";
}

/** The port the argument tables use; only parsed, never bound. */
const PORT_ARG = 5000;

const SERVER_DEFAULTS: ServerArgs = {
  port: PORT_ARG,
  maxFailures: 3,
  host: "0.0.0.0",
  blockDurationSeconds: 10,
  timeoutSeconds: 0,
  credentials: "credentials.txt",
  maxConnections: undefined,
  maxPendingPerIp: 32,
  maxFailuresPerIp: 30,
  maxRegistrationsPerIp: 10,
  allowRegister: false,
  duplicateLogin: "deny",
  quiet: false,
  tlsCert: undefined,
  tlsKey: undefined,
  noTls: false,
  proxyProtocol: false,
  dataDir: undefined,
  keepBoard: false,
  sync: "full",
};

Deno.test("parseServerArgs() reads the two positionals with every default", () => {
  assert.deepEqual(serverArgs(["5000", "3"]), SERVER_DEFAULTS);
});

for (const attempts of ["1", "2", "3", "4", "5"]) {
  Deno.test(`parseServerArgs() accepts ${attempts} allowed failed attempts`, () => {
    assert.equal(serverArgs(["5000", attempts]).maxFailures, Number(attempts));
  });
}

Deno.test("parseServerArgs() reads every option", () => {
  assert.deepEqual(
    serverArgs([
      "0",
      "5",
      "--host",
      "127.0.0.1",
      "--block-duration",
      "60",
      "--timeout",
      "300",
      "--credentials",
      "/etc/toom/creds.txt",
      "--max-connections",
      "1000",
      "--max-pending-per-ip",
      "8",
      "--max-failures-per-ip",
      "0",
      "--max-registrations-per-ip",
      "100",
      "--allow-register",
      "--duplicate-login",
      "replace",
      "--quiet",
      "--data-dir",
      "/var/lib/toom",
      "--keep-board",
      "--sync",
      "normal",
    ]),
    {
      port: 0,
      maxFailures: 5,
      host: "127.0.0.1",
      blockDurationSeconds: 60,
      timeoutSeconds: 300,
      credentials: "/etc/toom/creds.txt",
      maxConnections: 1000,
      maxPendingPerIp: 8,
      maxFailuresPerIp: 0,
      maxRegistrationsPerIp: 100,
      allowRegister: true,
      duplicateLogin: "replace",
      quiet: true,
      tlsCert: undefined,
      tlsKey: undefined,
      noTls: false,
      proxyProtocol: false,
      dataDir: "/var/lib/toom",
      keepBoard: true,
      sync: "normal",
    },
  );
});

Deno.test("parseServerArgs() reads --database and --node-id for cluster mode", () => {
  const url = "postgres://toom@db.example:5432/toom";
  assert.deepEqual(serverArgs(["5000", "3", "--database", url, "--node-id", "node-1"]), {
    ...SERVER_DEFAULTS,
    database: url,
    nodeId: "node-1",
  });
  assert.deepEqual(serverArgs(["5000", "3", `--database=${url}`]), {
    ...SERVER_DEFAULTS,
    database: url,
  });
});

Deno.test("parseServerArgs() accepts options before, between and after positionals", () => {
  const expected = { ...SERVER_DEFAULTS, quiet: true, host: "::1" };
  assert.deepEqual(serverArgs(["--quiet", "5000", "--host", "::1", "3"]), expected);
  assert.deepEqual(serverArgs(["--host=::1", "5000", "3", "--quiet"]), expected);
});

Deno.test("parseServerArgs() accepts fractional seconds and --duplicate-login deny", () => {
  const parsed = serverArgs([
    "5000",
    "3",
    "--block-duration",
    "0.5",
    "--timeout",
    "0",
    "--duplicate-login",
    "deny",
  ]);
  assert.equal(parsed.blockDurationSeconds, 0.5);
  assert.equal(parsed.timeoutSeconds, 0);
  assert.equal(parsed.duplicateLogin, "deny");
});

Deno.test("parseServerArgs() reads --tls-cert with --tls-key, and --no-tls", () => {
  const real = serverArgs(["5000", "3", "--tls-cert", "/etc/toom/cert.pem", "--tls-key=k.pem"]);
  assert.deepEqual([real.tlsCert, real.tlsKey, real.noTls], ["/etc/toom/cert.pem", "k.pem", false]);
  const plain = serverArgs(["5000", "3", "--no-tls"]);
  assert.deepEqual([plain.tlsCert, plain.tlsKey, plain.noTls], [undefined, undefined, true]);
  assert.equal(plain.proxyProtocol, false);
  assert.equal(serverArgs(["5000", "3", "--no-tls", "--proxy-protocol"]).proxyProtocol, true);
});

Deno.test("parseServerArgs() says --proxy-protocol needs --no-tls", () => {
  assert.equal(
    exited(parseServerArgs(["5000", "3", "--proxy-protocol"])).stderr,
    `--proxy-protocol needs --no-tls: the load balancer in front terminates TLS\n${SERVER_USAGE}\n`,
  );
});

Deno.test("parseServerArgs() says --tls-cert and --tls-key go together", () => {
  for (const argv of [["--tls-cert", "c.pem"], ["--tls-key", "k.pem"]]) {
    assert.equal(
      exited(parseServerArgs(["5000", "3", ...argv])).stderr,
      `--tls-cert and --tls-key go together: give both or neither\n${SERVER_USAGE}\n`,
    );
  }
});

Deno.test("parseServerArgs() lists the TLS options in its help", () => {
  const help = exited(parseServerArgs(["--help"])).stdout!;
  for (
    const option of [
      "--tls-cert FILE",
      "--tls-key FILE",
      "--no-tls",
      "toom-cert.pem",
      "--proxy-protocol",
    ]
  ) {
    assert.ok(help.includes(option), option);
  }
});

Deno.test("parseServerArgs() accepts port 0 and 65535", () => {
  assert.equal(serverArgs(["0", "3"]).port, 0);
  assert.equal(serverArgs(["65535", "3"]).port, 65535);
});

for (
  const attempts of ["0", "6", "abc", "3.5", "10", "", " 3", "3 ", "+3", "0x3", "1e0", "three"]
) {
  Deno.test(`parseServerArgs() rejects ${JSON.stringify(attempts)} attempts with the spec's text`, () => {
    assert.deepEqual(parseServerArgs(["5000", attempts]), {
      exit: 2,
      stderr: attemptsMessage(attempts),
    });
  });
}

Deno.test({
  name: 'parseServerArgs() rejects "-1" attempts with the spec\'s text',
  fn() {
    assert.deepEqual(parseServerArgs(["5000", "-1"]), {
      exit: 2,
      stderr: attemptsMessage("-1"),
    });
  },
});

Deno.test('parseServerArgs() rejects "-1" attempts with status 2', () => {
  assert.equal(exited(parseServerArgs(["5000", "-1"])).exit, 2);
});

const SERVER_USAGE_EXITS: [string, string[]][] = [
  ["no arguments", []],
  ["one argument", ["5000"]],
  ["three arguments", ["5000", "3", "extra"]],
  ["a non-numeric port", ["abc", "3"]],
  ["a port over 65535", ["65536", "3"]],
  ["a negative port", ["--", "-1", "3"]],
  ["a fractional port", ["5000.5", "3"]],
  ["a six-digit port", ["100000", "3"]],
  ["an empty port", ["", "3"]],
  ["an unknown option", ["5000", "3", "--nope"]],
  ["an unknown short option", ["5000", "3", "-x"]],
  ["a value for a flag", ["5000", "3", "--quiet=yes"]],
  ["a missing option value", ["5000", "3", "--host"]],
  ["a bad --block-duration", ["5000", "3", "--block-duration", "abc"]],
  ["a negative --block-duration", ["5000", "3", "--block-duration=-1"]],
  ["a bad --timeout", ["5000", "3", "--timeout", "soon"]],
  ["a bad --duplicate-login", ["5000", "3", "--duplicate-login", "allow"]],
  ["a zero --max-connections", ["5000", "3", "--max-connections", "0"]],
  ["a fractional --max-connections", ["5000", "3", "--max-connections", "1.5"]],
  ["a negative --max-pending-per-ip", ["5000", "3", "--max-pending-per-ip=-1"]],
  ["a bad --max-failures-per-ip", ["5000", "3", "--max-failures-per-ip", "lots"]],
  ["a bad --max-registrations-per-ip", ["5000", "3", "--max-registrations-per-ip", ""]],
  ["--tls-cert without --tls-key", ["5000", "3", "--tls-cert", "c.pem"]],
  ["--tls-key without --tls-cert", ["5000", "3", "--tls-key", "k.pem"]],
  ["--no-tls with a certificate", ["5000", "3", "--no-tls", "--tls-cert=c", "--tls-key=k"]],
  ["a missing --tls-cert value", ["5000", "3", "--tls-key", "k.pem", "--tls-cert"]],
  ["a bad --sync", ["5000", "3", "--sync", "off"]],
  ["an empty --data-dir", ["5000", "3", "--data-dir="]],
  ["an empty --database", ["5000", "3", "--database="]],
  ["--node-id without --database", ["5000", "3", "--node-id", "a"]],
  ["a bad --node-id", ["5000", "3", "--database", "postgres://db/t", "--node-id", "a b"]],
];

for (const [what, argv] of SERVER_USAGE_EXITS) {
  Deno.test(`parseServerArgs() exits 2 with the usage for ${what}`, () => {
    const result = exited(parseServerArgs(argv));
    assert.equal(result.exit, 2);
    assert.equal(result.stdout, undefined);
    assert.ok(result.stderr?.endsWith(SERVER_USAGE + "\n"), result.stderr);
  });
}

const HASH_CREDENTIALS_EXITS: [string, string[], string][] = [
  ["positionals", ["5000", "3", "--hash-credentials"], "Expected 0 arguments, got 2."],
  ["a value", ["--hash-credentials=yes"], ""],
  ["another option", ["--hash-credentials", "--quiet"], "--hash-credentials takes no other option"],
];

for (const [what, argv, problem] of HASH_CREDENTIALS_EXITS) {
  Deno.test(`parseServerArgs() exits 2 with its own usage for --hash-credentials with ${what}`, () => {
    const result = exited(parseServerArgs(argv));
    assert.equal(result.exit, 2);
    assert.ok(result.stderr?.startsWith(problem), result.stderr);
    assert.ok(result.stderr?.endsWith(HASH_CREDENTIALS_USAGE + "\n"), result.stderr);
  });
}

Deno.test("parseServerArgs() checks the argument count before the attempts value", () => {
  const result = exited(parseServerArgs(["5000", "9", "extra"]));
  assert.equal(result.stderr, `Expected 2 arguments, got 3.\n${SERVER_USAGE}\n`);
});

Deno.test("parseServerArgs() names a bad port", () => {
  assert.equal(
    exited(parseServerArgs(["http", "3"])).stderr,
    `Invalid port: http\n${SERVER_USAGE}\n`,
  );
});

for (const flag of ["--help", "-h"]) {
  Deno.test(`parseServerArgs() prints help for ${flag} and exits 0`, () => {
    for (const argv of [[flag], ["5000", "3", flag], ["bad", flag]]) {
      const result = exited(parseServerArgs(argv));
      assert.equal(result.exit, 0);
      assert.equal(result.stderr, undefined);
      const stdout = result.stdout ?? "";
      assert.ok(stdout.startsWith(SERVER_USAGE + "\n"));
      for (const option of ["--host", "--block-duration", "--timeout", "--credentials"]) {
        assert.ok(stdout.includes(option), `help lacks ${option}`);
      }
    }
  });
}

Deno.test("parseServerArgs() prints the version for --version and exits 0", () => {
  assert.deepEqual(parseServerArgs(["--version"]), {
    exit: 0,
    stdout: `chat-server ${VERSION}\n`,
  });
  assert.match(VERSION, /^\d+\.\d+\.\d+$/);
});

Deno.test("parseServerArgs() names a bad limit", () => {
  assert.equal(
    exited(parseServerArgs(["5000", "3", "--max-failures-per-ip", "lots"])).stderr,
    `Invalid --max-failures-per-ip: lots\n${SERVER_USAGE}\n`,
  );
});

Deno.test("parseServerArgs() reads --hash-credentials alone, with or without --credentials", () => {
  assert.deepEqual(parseServerArgs(["--hash-credentials"]), {
    hashCredentials: true,
    credentials: "credentials.txt",
  });
  assert.deepEqual(parseServerArgs(["--credentials", "/etc/toom/c.txt", "--hash-credentials"]), {
    hashCredentials: true,
    credentials: "/etc/toom/c.txt",
  });
});

Deno.test("parseServerArgs() lists the limits and --hash-credentials in its help", () => {
  const help = exited(parseServerArgs(["--help"])).stdout!;
  for (
    const option of [
      "--max-connections N",
      "--max-pending-per-ip N",
      "--max-failures-per-ip N",
      "--max-registrations-per-ip N",
      "--hash-credentials",
    ]
  ) {
    assert.ok(help.includes(option), option);
  }
});
