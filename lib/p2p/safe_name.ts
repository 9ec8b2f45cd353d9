/**
 * Safe names for received files: a received file never escapes the download directory and never
 * overwrites anything.
 *
 * @module
 */

/** Longest base name kept, in UTF-16 code units, leaving room for a suffix. */
export const MAX_BASE_NAME_LENGTH = 200;

// Control characters, characters that are path separators or reserved on some systems, and
// invisible formatting characters (bidi controls, zero-width characters, the BOM) that would make
// a name show as something else (`vader_\u202etxt.exe` shows as `vader_exe.txt`). The last set is
// the one lib/shared/display.ts makes visible; this package imports nothing, so it is repeated.
const UNSAFE_CHARACTERS =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f<>:"|?*\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2028\u2029\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb]/g;

/**
 * Reduces a name that came off the network to a safe base name: directories (`/` and `\`) are
 * stripped, control, reserved and invisible formatting characters become `_`, leading dots and surrounding spaces are
 * dropped (so no hidden files, no `.` or `..`), and an empty result becomes `file`.
 */
export function safeBaseName(name: string): string {
  const parts = name.split(/[/\\]/);
  let base = (parts[parts.length - 1] ?? "").replace(UNSAFE_CHARACTERS, "_").trim();
  base = base.replace(/^\.+/, "").trim();
  if (base.length > MAX_BASE_NAME_LENGTH) {
    const dot = base.lastIndexOf(".");
    const extension = dot > 0 && base.length - dot <= 16 ? base.slice(dot) : "";
    base = base.slice(0, MAX_BASE_NAME_LENGTH - extension.length) + extension;
  }
  return base === "" ? "file" : base;
}

/** The name a received file is saved under: `<sender>_<safe base name>`. */
export function receivedFileName(sender: string, name: string): string {
  return `${safeBaseName(sender)}_${safeBaseName(name)}`;
}

/**
 * The `n`th candidate for `name`: `name` itself for 0, else `-n` before the extension
 * (`yoda_notes.txt` → `yoda_notes-1.txt`; `yoda_README` → `yoda_README-1`).
 */
export function numberedName(name: string, n: number): string {
  if (n === 0) return name;
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return `${name}-${n}`;
  return `${name.slice(0, dot)}-${n}${name.slice(dot)}`;
}

/** Joins a directory and a base name. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + name : `${dir}/${name}`;
}

/** How many numbered names {@linkcode moveIntoPlace} tries before giving up. */
export const MAX_NAME_ATTEMPTS = 10000;

/**
 * Atomically gives the finished file `tempPath` its final name in `dir`, never overwriting:
 * `Deno.link` fails if the target exists, so the next numbered name is tried; then the temporary
 * name is removed. Returns the path the file was saved as.
 */
export async function moveIntoPlace(tempPath: string, dir: string, name: string): Promise<string> {
  for (let n = 0; n < MAX_NAME_ATTEMPTS; n++) {
    const target = joinPath(dir, numberedName(name, n));
    try {
      await Deno.link(tempPath, target);
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) continue;
      throw error;
    }
    await Deno.remove(tempPath);
    return target;
  }
  throw new Deno.errors.AlreadyExists(`Failed to find a free name for ${name} in ${dir}`);
}
