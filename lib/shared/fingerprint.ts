/**
 * Certificate fingerprints, the one way both programs name a TLS certificate: the SHA-256 of its
 * DER bytes as upper-case hex pairs joined by colons (`AB:CD:…`), as
 * `openssl x509 -noout -fingerprint -sha256` prints it, so an operator can compare them by eye.
 */

/** The SHA-256 fingerprint of a DER certificate, `AB:CD:…` (32 pairs). */
export async function certificateFingerprint(der: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der.slice()));
  return [...digest].map((byte) => byte.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

const FINGERPRINT = /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/**
 * A fingerprint as written by hand or by another tool (any case, colons optional) in the form
 * `certificateFingerprint` returns, or undefined when it is not 32 bytes of hex.
 */
export function normalizeFingerprint(text: string): string | undefined {
  let hex = text.trim().toUpperCase();
  if (hex.startsWith("SHA256:")) hex = hex.slice("SHA256:".length);
  if (!hex.includes(":")) hex = hex.replace(/(..)(?!$)/g, "$1:");
  return FINGERPRINT.test(hex) ? hex : undefined;
}

/**
 * The DER bytes of the first PEM block labelled `label` in `pem` (e.g. the first certificate of
 * a chain), or undefined when there is none or its base64 is broken.
 */
export function derFromPem(pem: string, label = "CERTIFICATE"): Uint8Array | undefined {
  const match = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`).exec(pem);
  if (!match) return undefined;
  const base64 = match[1]!.replace(/\s+/g, "");
  if (base64 === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined;
  try {
    return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
  } catch {
    return undefined;
  }
}
