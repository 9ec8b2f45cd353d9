/**
 * `deno task build`: writes ./chat-server and ./chat-client.
 *
 * It runs `deno compile` with each program's permissions baked in. `deno compile` needs a
 * runtime (denort): it uses DENORT_BIN when set, otherwise it downloads one. Each binary is then
 * smoke-tested (`--version`); when no working runtime could be had, the build writes launcher
 * scripts that run the same entry points with the same permissions instead, and says so loudly.
 */

interface Program {
  output: string;
  entry: string;
  /** Permissions, the same for the compiled binary and the launcher. */
  flags: string[];
}

const COMMON = ["--unstable-net", "--no-prompt"];
/** What the client reads of the environment for colour and terminal size. */
const ENV = "NO_COLOR,TERM,COLUMNS,LINES";

const PROGRAMS: Program[] = [
  {
    output: "chat-server",
    entry: "server.ts",
    // The server reads and writes only files the operator names (credentials, logs) and its
    // certificate; the host name goes into the certificate it makes at the first start. It gets
    // the whole environment: with --database the PostgreSQL client reads PG* variables (PGHOST,
    // PGPASSWORD, …), and Deno cannot grant a prefix.
    flags: [
      ...COMMON,
      "--allow-env",
      "--allow-sys=hostname",
      "--allow-net",
      "--allow-read",
      "--allow-write",
    ],
  },
  {
    output: "chat-client",
    entry: "client.ts",
    // The client reads files to send and writes received ones into --download-dir; HOME is what
    // a leading ~ in an UPD file name stands for; it and XDG_CONFIG_HOME locate known_servers,
    // the pinned server certificates; statfs tells whether an offered file fits on the disk.
    flags: [
      ...COMMON,
      `--allow-env=${ENV},HOME,XDG_CONFIG_HOME`,
      "--allow-sys=statfs",
      "--allow-net",
      "--allow-read",
      "--allow-write",
    ],
  },
];

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

async function run(args: string[]): Promise<{ ok: boolean; output: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    ok: result.success,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

/** Runs `<binary> --version` with a deadline; a runtime that is not denort fails it. */
async function smokeTest(path: string, name: string): Promise<boolean> {
  const child = new Deno.Command(path, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const { stdout, success } = await child.output();
  clearTimeout(timer);
  return success && new TextDecoder().decode(stdout).startsWith(`${name} `);
}

async function compile(program: Program): Promise<string | undefined> {
  const target = `${root}/${program.output}`;
  // deno compile refuses to overwrite a file it did not write (such as a launcher).
  await Deno.remove(target).catch(() => {});
  const result = await run([
    "compile",
    ...program.flags,
    "--output",
    target,
    program.entry,
  ]);
  if (!result.ok) {
    // deno prints the cause on lines after "error:"; keep those, not the backtrace.
    const lines = result.output.split("\n");
    const start = Math.max(0, lines.findIndex((line) => line.startsWith("error")));
    const end = lines.findIndex((line) => line.startsWith("Stack backtrace"));
    return lines.slice(start, end < 0 ? undefined : end).map((l) => l.trim()).filter(Boolean)
      .join(" / ");
  }
  if (!await smokeTest(target, program.output)) {
    return "the compiled binary did not run as a standalone program (is DENORT_BIN a denort?)";
  }
  return undefined;
}

function launcher(program: Program): string {
  const deno = Deno.execPath();
  return `#!/bin/sh
# NOT A STANDALONE BINARY. \`deno task build\` could not get a Deno runtime (denort) for
# \`deno compile\` on this machine, so this launcher runs ${program.entry} with Deno instead,
# with the same permissions the binary would have had. Set DENORT_BIN to a denort and rebuild
# for a standalone executable.
DENO="\${DENO:-${deno}}"
command -v "$DENO" >/dev/null 2>&1 || DENO=deno
exec "$DENO" run ${
    program.flags.join(" ")
  } --config "${root}/deno.json" "${root}/${program.entry}" "$@"
`;
}

let fellBack = false;
for (const program of PROGRAMS) {
  const problem = await compile(program);
  if (problem === undefined) {
    console.log(`Built ./${program.output} (standalone, deno compile)`);
    continue;
  }
  fellBack = true;
  const path = `${root}/${program.output}`;
  await Deno.writeTextFile(path, launcher(program));
  await Deno.chmod(path, 0o755);
  console.error(`deno compile failed for ${program.output}: ${problem}`);
  console.error(`Wrote ./${program.output} as a LAUNCHER SCRIPT (needs deno; NOT standalone).`);
}
if (fellBack) {
  console.error(
    "\n*** WARNING: chat-server/chat-client are launcher scripts, not standalone binaries. ***\n" +
      "*** Set DENORT_BIN to a Deno runtime (denort) and run `deno task build` again.   ***",
  );
}
