/**
 * Certificates for TLS tests, made in memory (no permission needed): a certificate authority and
 * a server certificate it signs for chosen names, to test the `--ca` path next to the self-signed
 * certificates that lib/server/certificate.ts makes.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { certificateFingerprint, derFromPem } from "../lib/shared/fingerprint.ts";

x509.cryptoProvider.set(crypto);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** A certificate (PEM), its key (PEM) and, for an authority, what signs with it. */
export interface TestCertificate {
  cert: string;
  key: string;
  fingerprint: string;
}

/** An authority that signs server certificates. */
export interface TestAuthority extends TestCertificate {
  /** Signs a server certificate for `names` (host names and IP addresses). */
  issue(names: string[]): Promise<TestCertificate>;
}

async function pem(cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<TestCertificate> {
  const key = x509.PemConverter.encode(
    await crypto.subtle.exportKey("pkcs8", keys.privateKey),
    "PRIVATE KEY",
  );
  const text = cert.toString("pem") + "\n";
  return { cert: text, key, fingerprint: await certificateFingerprint(derFromPem(text)!) };
}

function serial(): string {
  return "0" + crypto.randomUUID().replaceAll("-", "").slice(1);
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

/** Makes a certificate authority (self-signed, CA:true) named `name`. */
export async function makeAuthority(name = "TOOM test CA"): Promise<TestAuthority> {
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + YEAR_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    ...(await pem(caCert, keys)),
    async issue(names) {
      const serverKeys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${names[0] ?? "localhost"}`,
        issuer: caCert.subject,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + YEAR_MS),
        signingAlgorithm: ALGORITHM,
        publicKey: serverKeys.publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(
            names.map((value) => ({
              type: /^[\d.]+$/.test(value) || value.includes(":") ? "ip" as const : "dns" as const,
              value,
            })),
          ),
          await x509.AuthorityKeyIdentifierExtension.create(caCert),
        ],
      });
      return await pem(cert, serverKeys);
    },
  };
}
