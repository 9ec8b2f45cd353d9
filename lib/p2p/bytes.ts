/**
 * Sizes in human units, both ways: how the engine and the client show a size (`4.0 GiB`), and how
 * a size limit is read from the command line (`500M`, `4G`, `1048576`).
 *
 * @module
 */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/**
 * A size in human units: whole bytes below 1 KiB, then KiB, MiB, … with one decimal
 * (`633 B`, `4.2 MiB`, `1.0 GiB`).
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "? B";
  let value = bytes;
  let unit = 0;
  // Move up a unit when the value would round to 1024 or more in this one.
  while (unit < UNITS.length - 1 && (unit === 0 ? Math.round(value) : round1(value)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

const SIZE = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]?)(i?b)?$/i;
const POWERS: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/**
 * Reads a size: a number of bytes (`1048576`), or a number with a unit `K`, `M`, `G`, `T` or `P`,
 * each a power of 1024 (so `500M` is 500 MiB and `4G` 4 GiB), optionally followed by `B` or `iB`
 * (`4GB`, `4GiB` are the same) and in either case; `B` alone means bytes. Fractions are allowed
 * with a unit (`1.5G`). Returns undefined for anything else, and for sizes over 2⁵³−1 bytes.
 */
export function parseBytes(text: string): number | undefined {
  const match = SIZE.exec(text.trim());
  if (!match) return undefined;
  const [, number, unit, suffix] = match as unknown as [string, string, string, string | undefined];
  if (unit === "" && suffix !== undefined && suffix.toLowerCase() !== "b") return undefined;
  const bytes = Math.floor(Number(number) * 1024 ** POWERS[unit.toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
