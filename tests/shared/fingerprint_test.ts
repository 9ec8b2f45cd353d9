/** Certificate fingerprints: their form, reading them back, and PEM to DER. */
import assert from "node:assert/strict";
import {
  certificateFingerprint,
  derFromPem,
  normalizeFingerprint,
} from "../../lib/shared/fingerprint.ts";

Deno.test("certificateFingerprint() is the SHA-256 of the bytes as colon-separated hex pairs", async () => {
  // SHA-256 of the empty input, as every tool prints it.
  assert.equal(
    await certificateFingerprint(new Uint8Array()),
    "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55",
  );
});

Deno.test("normalizeFingerprint() reads any case, with or without colons, and refuses the rest", () => {
  const want = "AB".repeat(32).match(/../g)!.join(":");
  assert.equal(normalizeFingerprint("ab".repeat(32)), want);
  assert.equal(normalizeFingerprint(` ${want.toLowerCase()} `), want);
  assert.equal(normalizeFingerprint(`SHA256:${want}`), want);
  for (const bad of ["", "AB:CD", "ZZ".repeat(32), "AB".repeat(33), `${want}:`]) {
    assert.equal(normalizeFingerprint(bad), undefined, bad);
  }
});

Deno.test("derFromPem() decodes the first block with the label and refuses broken ones", () => {
  const pem = "junk\n-----BEGIN CERTIFICATE-----\nAQID\nBA==\n-----END CERTIFICATE-----\n" +
    "-----BEGIN CERTIFICATE-----\nBQY=\n-----END CERTIFICATE-----\n";
  assert.deepEqual(derFromPem(pem), new Uint8Array([1, 2, 3, 4]));
  assert.equal(derFromPem("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"), undefined);
  assert.equal(
    derFromPem("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----"),
    undefined,
  );
  assert.deepEqual(
    derFromPem("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----", "PRIVATE KEY"),
    new Uint8Array([1, 2, 3]),
  );
  assert.equal(derFromPem(""), undefined);
});
