/**
 * The server's TLS identity: a self-signed ECDSA P-256 certificate made at the first start and
 * kept beside the server's other files (the key readable by its owner only), or a certificate the
 * operator names. Clients pin the self-signed one on first use, so it must stay the same from one
 * start to the next: it is made once and reused, never silently replaced.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { certificateFingerprint, derFromPem } from "../shared/fingerprint.ts";

x509.cryptoProvider.set(crypto);

/** Where the certificate made at the first start is kept (the server's current directory). */
export const DEFAULT_CERT_FILE = "toom-cert.pem";
/** Where its private key is kept, mode 0600. */
export const DEFAULT_KEY_FILE = "toom-key.pem";

/** A certificate (chain) and its private key, PEM, as `Deno.listenTls` takes them. */
export interface TlsIdentity {
  cert: string;
  key: string;
  /** The SHA-256 fingerprint of the (first) certificate; see lib/shared/fingerprint.ts. */
  fingerprint: string;
}

/** A certificate or key that cannot be read, made or used; the message says which file and why. */
export class CertificateError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CertificateError";
  }
}

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const VALID_YEARS = 20;

function isIpAddress(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || name.includes(":");
}

/**
 * Makes a self-signed certificate and key in memory (no permission needed). The subject
 * alternative names are `names` (host names and addresses) plus localhost, 127.0.0.1 and ::1;
 * clients pin the certificate rather than check names, but tools that do check find them.
 */
export async function createSelfSigned(
  options: { names?: string[]; now?: Date } = {},
): Promise<TlsIdentity> {
  const names = [...new Set([...(options.names ?? []), "localhost", "127.0.0.1", "::1"])]
    .filter((name) => name !== "" && name !== "0.0.0.0" && name !== "::");
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = serial[0]! & 0x7f; // A positive serial number.
  const notBefore = new Date((options.now ?? new Date()).getTime() - 60_000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALID_YEARS);
  const commonName = names.find((name) => !isIpAddress(name)) ?? "localhost";
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: [...serial].map((b) => b.toString(16).padStart(2, "0")).join(""),
    name: `CN=${commonName.replace(/[,+="\\<>;#]/g, "_")}, O=TOOM chat server`,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((name) => ({
          type: isIpAddress(name) ? "ip" as const : "dns" as const,
          value: name,
        })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const key = x509.PemConverter.encode(
    await crypto.subtle.exportKey("pkcs8", keys.privateKey),
    "PRIVATE KEY",
  );
  const pem = cert.toString("pem") + "\n";
  return { cert: pem, key: key + "\n", fingerprint: await fingerprintOf(pem, "certificate") };
}

async function fingerprintOf(pem: string, where: string): Promise<string> {
  const der = derFromPem(pem);
  if (!der) throw new CertificateError(`${where} holds no PEM certificate`);
  return await certificateFingerprint(der);
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new CertificateError(`Cannot read the TLS ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads a certificate (chain) and key the operator names (`--tls-cert`, `--tls-key`), checking
 * that each holds what it should. Whether they belong together is found out when listening.
 */
export async function loadCertificateFiles(
  certPath: string,
  keyPath: string,
): Promise<TlsIdentity> {
  const cert = await readPem(certPath, "certificate");
  const key = await readPem(keyPath, "key");
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new CertificateError(`The TLS key ${keyPath} holds no PEM private key`);
  }
  return { cert, key, fingerprint: await fingerprintOf(cert, `The TLS certificate ${certPath}`) };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw new CertificateError(`Cannot look for ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** What `loadOrCreateCertificate` found or made. */
export interface StoredIdentity extends TlsIdentity {
  /** True when the pair was made by this call (the first start). */
  created: boolean;
  /** Things the operator should fix, such as a key file others can read. */
  warnings: string[];
}

/**
 * Reads the self-signed pair at `certPath` and `keyPath`, or, when neither exists (the first
 * start), makes one and writes it there, the key with mode 0600. A lone certificate or key is an
 * error rather than a reason to make a new pair: a new certificate makes every client that pinned
 * the old one refuse the server, which the operator must decide on.
 */
export async function loadOrCreateCertificate(
  options: { certPath?: string; keyPath?: string; names?: string[] } = {},
): Promise<StoredIdentity> {
  const certPath = options.certPath ?? DEFAULT_CERT_FILE;
  const keyPath = options.keyPath ?? DEFAULT_KEY_FILE;
  const [haveCert, haveKey] = [await exists(certPath), await exists(keyPath)];
  if (haveCert && haveKey) {
    const identity = await loadCertificateFiles(certPath, keyPath);
    const warnings: string[] = [];
    const mode = (await Deno.stat(keyPath)).mode;
    if (mode !== null && (mode & 0o077) !== 0) {
      warnings.push(
        `${keyPath} can be read by other users (mode ${
          (mode & 0o777).toString(8).padStart(4, "0")
        }); ` +
          `run: chmod 600 ${keyPath}`,
      );
    }
    return { ...identity, created: false, warnings };
  }
  if (haveCert || haveKey) {
    const [present, missing] = haveCert ? [certPath, keyPath] : [keyPath, certPath];
    throw new CertificateError(
      `${present} exists but ${missing} does not. Restore ${missing}, or remove ${present} to ` +
        "make a new certificate (clients that pinned the old one will then refuse the server " +
        "until their users accept the new one)",
    );
  }
  const identity = await createSelfSigned(options.names ? { names: options.names } : {});
  // Each file is written whole under a temporary name, then renamed, so a crash never leaves half
  // a key; the key goes first, so a lone certificate never hides a key that was lost.
  const suffix = `.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(keyPath + suffix, identity.key, { mode: 0o600, createNew: true });
    await Deno.chmod(keyPath + suffix, 0o600);
    await Deno.writeTextFile(certPath + suffix, identity.cert, { mode: 0o644, createNew: true });
    await Deno.rename(keyPath + suffix, keyPath);
    await Deno.rename(certPath + suffix, certPath);
  } catch (error) {
    for (const path of [keyPath + suffix, certPath + suffix]) {
      await Deno.remove(path).catch(() => {});
    }
    throw new CertificateError(
      `Cannot write the new TLS certificate (${certPath}, ${keyPath}): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return { ...identity, created: true, warnings: [] };
}
