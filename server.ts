/**
 * chat-server: parses the command line, wires the server core to TCP, toom.db and the files in
 * its directory (the current one, or --data-dir), and turns the outcome into an exit status.
 */
import {
  ChatServer,
  DEFAULT_CERT_FILE,
  DEFAULT_KEY_FILE,
  DiskFiles,
  loadCertificateFiles,
  loadOrCreateCertificate,
  parseServerArgs,
  serveTcp,
  type TlsIdentity,
} from "./lib/server/mod.ts";
import { hashCredentialsFile } from "./lib/server/accounts.ts";
import { type ClusterNode, openCluster } from "./lib/server/cluster/cluster.ts";
import { redactUrl } from "./lib/server/store/postgres.ts";
import { DATABASE_FILE, openSqliteStorage, StorageError } from "./lib/server/store/sqlite.ts";
import { exposureWarning } from "./lib/server/credentials.ts";
import { defaultMaxConnections } from "./lib/server/limits.ts";
import { isExit } from "./lib/shared/cli.ts";
import { systemClock } from "./lib/shared/clock.ts";
import type { Storage } from "./lib/server/store/journal.ts";
import { displaySafe } from "./lib/shared/display.ts";
import type { Logger } from "./lib/shared/logger.ts";

/**
 * The certificate to listen with: the operator's (--tls-cert, --tls-key), the self-signed pair in
 * the current directory (made at the first start), none (--no-tls), or a message saying why it
 * cannot be had.
 */
async function tlsIdentity(
  args: { host: string; tlsCert: string | undefined; tlsKey: string | undefined; noTls: boolean },
): Promise<TlsIdentity | undefined | string> {
  if (args.noTls) {
    console.error(
      "TLS is off (--no-tls): passwords and peer-to-peer keys cross the network in the clear",
    );
    return undefined;
  }
  try {
    if (args.tlsCert !== undefined && args.tlsKey !== undefined) {
      return await loadCertificateFiles(args.tlsCert, args.tlsKey);
    }
    const names = [args.host];
    if (Deno.permissions.querySync({ name: "sys", kind: "hostname" }).state === "granted") {
      names.push(Deno.hostname());
    }
    const identity = await loadOrCreateCertificate({ names });
    for (const warning of identity.warnings) console.error(warning);
    if (identity.created) {
      console.error(
        `Made a self-signed TLS certificate: ${DEFAULT_CERT_FILE} and its key ${DEFAULT_KEY_FILE}`,
      );
    }
    return identity;
  } catch (error) {
    return (error as Error).message;
  }
}

/** `chat-server --hash-credentials`: hashes the clear-text passwords in place; the exit status. */
async function hashCredentials(path: string): Promise<number> {
  try {
    const hashed = await hashCredentialsFile(new DiskFiles(), path);
    console.log(`Hashed ${hashed} clear-text password(s) in ${path}`);
    return 0;
  } catch (error) {
    console.error(`Could not hash the passwords in ${path}: ${(error as Error).message}`);
    return 1;
  }
}

/**
 * Warns when the credentials file is missing, or holds clear-text passwords that others may read.
 */
async function checkCredentials(files: DiskFiles, path: string, logger: Logger): Promise<void> {
  const text = await files.read(path);
  if (text === undefined) return logger.warn(`${path} not found: no accounts until it exists`);
  const mode = await Deno.stat(path).then((info) => info.mode, () => null);
  const warning = mode === null ? undefined : exposureWarning(path, mode, text);
  if (warning) logger.warn(warning);
}

/**
 * Moves into --data-dir (made if missing, private to its owner), first making the paths given on
 * the command line absolute so they still mean what the user meant; a message if it cannot.
 */
function enterDataDir(
  args: {
    dataDir: string | undefined;
    credentials: string;
    tlsCert: string | undefined;
    tlsKey: string | undefined;
  },
): string | undefined {
  const absolute = (path: string) => path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  if (args.credentials !== "credentials.txt") args.credentials = absolute(args.credentials);
  if (args.tlsCert !== undefined) args.tlsCert = absolute(args.tlsCert);
  if (args.tlsKey !== undefined) args.tlsKey = absolute(args.tlsKey);
  try {
    Deno.mkdirSync(args.dataDir!, { recursive: true, mode: 0o700 });
    Deno.chdir(args.dataDir!);
    return undefined;
  } catch (error) {
    return `Cannot use --data-dir ${args.dataDir}: ${(error as Error).message}`;
  }
}

/**
 * Where the state lives: toom.db, or with --database a cluster node on PostgreSQL; or a message
 * saying why it cannot be had.
 */
async function openState(
  args: { database?: string; nodeId?: string; host: string; port: number; sync: "full" | "normal" },
  logger: Logger,
): Promise<{ storage: Storage } | { cluster: ClusterNode } | string> {
  if (args.database === undefined) {
    try {
      return {
        storage: openSqliteStorage(DATABASE_FILE, { clock: systemClock, sync: args.sync, logger }),
      };
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      return error.message;
    }
  }
  if (Deno.permissions.querySync({ name: "env" }).state !== "granted") {
    return "chat-server needs --allow-env for --database: the PostgreSQL client reads PG* variables";
  }
  const node = args.nodeId ?? `node-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const cluster = await openCluster(args.database, {
      node,
      clock: systemClock,
      logger,
      host: args.host,
      port: args.port,
    });
    logger.info(
      `Cluster node ${node} on ${redactUrl(args.database)}, starting at seq ` +
        `${cluster.start.seq} (from ${cluster.start.from})`,
    );
    return { cluster };
  } catch (error) {
    return `Cannot join the cluster on ${redactUrl(args.database)}: ${(error as Error).message}`;
  }
}

async function main(): Promise<number> {
  const args = parseServerArgs(Deno.args);
  if (isExit(args)) {
    if (args.stdout) console.log(args.stdout.trimEnd());
    if (args.stderr) console.error(args.stderr.trimEnd());
    return args.exit;
  }
  if ("hashCredentials" in args) return await hashCredentials(args.credentials);
  // What the server logs quotes users (names, messages, file names): make it safe to show.
  const logger: Logger = {
    info: args.quiet ? () => {} : (message) => console.log(displaySafe(message)),
    warn: (message) => console.error(displaySafe(message)),
  };
  for (const name of ["read", "write"] as const) {
    if (Deno.permissions.querySync({ name, path: "." }).state !== "granted") {
      console.error(
        `chat-server needs --allow-${name}: it reads ${args.credentials} and writes ` +
          `userlog.txt, messagelog.txt and ${DATABASE_FILE} in its directory`,
      );
      return 1;
    }
  }
  if (args.dataDir !== undefined) {
    const moved = enterDataDir(args);
    if (moved !== undefined) {
      console.error(moved);
      return 1;
    }
  }
  const tls = await tlsIdentity(args);
  if (typeof tls === "string") {
    console.error(tls);
    return 1;
  }
  const files = new DiskFiles();
  // A cluster node's file is rewritten at start as a copy of the cluster's accounts, hashed (its
  // accounts the cluster lacks are added first): neither warning would be true of it.
  if (args.database === undefined) await checkCredentials(files, args.credentials, logger);
  const state = await openState(args, logger);
  if (typeof state === "string") {
    console.error(state);
    return 1;
  }
  const closeState = () => "cluster" in state ? state.cluster.close() : state.storage.close();
  const { maxConnections, freeDescriptors } = args.maxConnections !== undefined
    ? { maxConnections: args.maxConnections, freeDescriptors: undefined }
    : defaultMaxConnections();
  const server = new ChatServer({
    maxFailures: args.maxFailures,
    blockDurationMs: args.blockDurationSeconds * 1000,
    inactivityMs: args.timeoutSeconds * 1000,
    allowRegister: args.allowRegister,
    duplicateLogin: args.duplicateLogin,
    credentialsPath: args.credentials,
    userLogPath: "userlog.txt",
    messageLogPath: "messagelog.txt",
    files,
    clock: systemClock,
    logger,
    maxConnections,
    maxPendingPerIp: args.maxPendingPerIp,
    maxFailuresPerIp: args.maxFailuresPerIp,
    maxRegistrationsPerIp: args.maxRegistrationsPerIp,
    ...state,
    keepBoard: args.keepBoard,
  });
  const controller = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => controller.abort());
  }
  let listening;
  try {
    listening = await serveTcp(server, {
      hostname: args.host,
      port: args.port,
      signal: controller.signal,
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      proxyProtocol: args.proxyProtocol,
    });
  } catch (error) {
    const network = [
      Deno.errors.AddrInUse,
      Deno.errors.AddrNotAvailable,
      Deno.errors.PermissionDenied,
    ]
      .some((kind) => error instanceof kind);
    // Otherwise the certificate and key were refused (they do not belong together, or the key's
    // kind is unknown): name them.
    const files = args.tlsCert !== undefined
      ? `${args.tlsCert} with the key ${args.tlsKey}`
      : `${DEFAULT_CERT_FILE} with the key ${DEFAULT_KEY_FILE}`;
    console.error(
      tls && !network
        ? `Cannot use the TLS certificate ${files}: ${(error as Error).message}`
        : `Cannot listen on ${args.host}:${args.port}: ${(error as Error).message}`,
    );
    await closeState();
    return 1;
  }
  // The port comes first so that whoever started the server on port 0 can read it easily.
  console.log(
    `TOOM server listening on port ${listening.port} (${args.host}:${listening.port})`,
  );
  // Operators compare this with what a client prints when it pins the certificate.
  if (tls) console.log(`TLS certificate SHA-256 fingerprint: ${tls.fingerprint}`);
  logger.info(
    `Accepting up to ${maxConnections} connections` +
      (freeDescriptors !== undefined ? ` (${freeDescriptors} file descriptors free)` : ""),
  );
  await listening.finished;
  // The server has closed its store; a cluster node leaves the cluster after it.
  if ("cluster" in state) await state.cluster.close();
  console.log("Server stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
