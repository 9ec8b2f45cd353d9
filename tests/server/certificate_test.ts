/**
 * The server's TLS identity: the self-signed certificate it makes (in memory, then on disk with a
 * private key file), its reuse, and the errors for files that cannot be used.
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import {
  CertificateError,
  createSelfSigned,
  loadCertificateFiles,
  loadOrCreateCertificate,
} from "../../lib/server/certificate.ts";
import { certificateFingerprint, derFromPem } from "../../lib/shared/fingerprint.ts";
import { tempDir } from "../../testing/temp_dir.ts";

const CAN_USE_FILES = (["read", "write"] as const).every((name) =>
  Deno.permissions.querySync({ name }).state === "granted"
);
if (!CAN_USE_FILES) {
  console.log("(certificate file tests ignored: they need --allow-read --allow-write)");
}
const files = { ignore: !CAN_USE_FILES };

Deno.test("createSelfSigned() makes an ECDSA P-256 server certificate with the usual names", async () => {
  const identity = await createSelfSigned({ names: ["chat.example.com", "10.0.0.7", "0.0.0.0"] });
  const cert = new x509.X509Certificate(identity.cert);
  assert.equal(cert.subject, "CN=chat.example.com, O=TOOM chat server");
  assert.equal(cert.issuer, cert.subject);
  assert.equal((cert.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
  assert.ok(await cert.verify({ signatureOnly: true }), "self-signed");
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(
    san.names.items.map((name) => `${name.type}:${name.value}`),
    ["dns:chat.example.com", "ip:10.0.0.7", "dns:localhost", "ip:127.0.0.1", "ip:::1"],
  );
  assert.ok(cert.notAfter.getTime() - Date.now() > 10 * 365 * 24 * 3600 * 1000, "long-lived");
  assert.match(identity.key, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(identity.fingerprint, await certificateFingerprint(derFromPem(identity.cert)!));
  assert.notEqual(
    (await createSelfSigned()).fingerprint,
    identity.fingerprint,
    "a new key each time",
  );
});

Deno.test({
  name: "loadOrCreateCertificate() makes the pair at the first start, key mode 0600, and reuses it",
  ...files,
  async fn() {
    await using dir = await tempDir("toom-cert-");
    const paths = { certPath: `${dir.path}/toom-cert.pem`, keyPath: `${dir.path}/toom-key.pem` };
    const first = await loadOrCreateCertificate(paths);
    assert.equal(first.created, true);
    assert.deepEqual(first.warnings, []);
    assert.equal((await Deno.stat(paths.keyPath)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(paths.certPath), first.cert);
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), [
      "toom-cert.pem",
      "toom-key.pem",
    ]);
    const again = await loadOrCreateCertificate(paths);
    assert.equal(again.created, false);
    assert.equal(again.fingerprint, first.fingerprint);
    assert.equal(again.key, first.key);
  },
});

Deno.test({
  name: "loadOrCreateCertificate() warns about a key others can read, and refuses a lone file",
  ...files,
  async fn() {
    await using dir = await tempDir("toom-cert-");
    const paths = { certPath: `${dir.path}/c.pem`, keyPath: `${dir.path}/k.pem` };
    await loadOrCreateCertificate(paths);
    await Deno.chmod(paths.keyPath, 0o644);
    assert.deepEqual((await loadOrCreateCertificate(paths)).warnings, [
      `${paths.keyPath} can be read by other users (mode 0644); run: chmod 600 ${paths.keyPath}`,
    ]);
    await Deno.remove(paths.keyPath);
    await assert.rejects(
      loadOrCreateCertificate(paths),
      (error: Error) =>
        error instanceof CertificateError &&
        error.message.startsWith(`${paths.certPath} exists but ${paths.keyPath} does not.`),
    );
    assert.ok(await Deno.stat(paths.certPath), "the certificate is left alone");
  },
});

Deno.test({
  name: "loadCertificateFiles() reads a named pair and says which file is missing or wrong",
  ...files,
  async fn() {
    await using dir = await tempDir("toom-cert-");
    const identity = await createSelfSigned();
    const cert = `${dir.path}/cert.pem`;
    const key = `${dir.path}/key.pem`;
    await Deno.writeTextFile(cert, identity.cert);
    await Deno.writeTextFile(key, identity.key);
    assert.equal((await loadCertificateFiles(cert, key)).fingerprint, identity.fingerprint);
    await assert.rejects(
      loadCertificateFiles(`${dir.path}/nope.pem`, key),
      new RegExp(`^CertificateError: Cannot read the TLS certificate ${dir.path}/nope\\.pem: `),
    );
    await assert.rejects(loadCertificateFiles(key, key), /holds no PEM certificate/);
    await assert.rejects(loadCertificateFiles(cert, cert), /holds no PEM private key/);
  },
});
