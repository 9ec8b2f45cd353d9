/**
 * The look-alike rule for new usernames: what `--allow-register` refuses so that nobody can
 * register a name that reads like someone else's (`yоda` with a Cyrillic `о`, `ｙｏｄａ` in fullwidth
 * letters, `yo\u200bda` with a zero-width space, a name reversed by a bidi control).
 *
 * The rule, applied to the name after Unicode NFC (which is also the form that is stored):
 *
 * 1. Every character is a letter (`\p{L}`), a combining mark (`\p{M}`), a decimal digit (`\p{Nd}`),
 *    `_`, `-` or `.`; the first is not a combining mark. So no control characters (`\p{Cc}`), no
 *    invisible characters (format characters `\p{Cf}` and every Default_Ignorable_Code_Point:
 *    zero-width space, joiners U+200B–U+200D, word joiner U+2060, the BOM U+FEFF, variation
 *    selectors, soft hyphen), no bidi controls (U+200E/U+200F, U+202A–U+202E, U+2066–U+2069,
 *    U+061C), no spaces, punctuation other than those three, symbols or emoji, no private-use or
 *    unassigned code points.
 * 2. Nothing changes under NFKC: fullwidth and halfwidth forms (`ｙ`), ligatures (`ﬁ`),
 *    superscripts, circled, mathematical and other compatibility characters are refused (the reply
 *    names the plain character to type instead).
 * 3. Scripts (the Unicode Script property), ignoring Common and Inherited (ASCII digits, `_`, `-`,
 *    `.`, combining marks): the name is in one script, or within one of the combinations that UTS
 *    #39 calls "highly restrictive": Latin + Han + Hiragana + Katakana (Japanese), Latin + Han +
 *    Bopomofo (Chinese), Latin + Han + Hangul (Korean), or any part of one of them. So `yoda`,
 *    `Hans_Müller`, `张伟`, `山田太郎`, `やまだ_taro`, `김철수`, `Ωμέγα` are fine; `yоda` (Latin and
 *    Cyrillic), `Ωmega` (Greek and Latin) and `yoda٣` (Latin and Arabic digits) are not.
 *
 * The rule is for registration only: accounts already in the credentials file keep working.
 */

/** Scripts a name may mix: each set is allowed whole or in part (UTS #39 "highly restrictive"). */
const ALLOWED_MIXES: ReadonlyArray<ReadonlySet<string>> = [
  new Set(["Latin", "Han", "Hiragana", "Katakana"]),
  new Set(["Latin", "Han", "Bopomofo"]),
  new Set(["Latin", "Han", "Hangul"]),
];

/** Every Unicode script (long names as in `\p{Script=…}`), the likeliest first. */
const SCRIPTS = [
  "Common",
  "Inherited",
  "Latin",
  "Greek",
  "Cyrillic",
  "Han",
  "Hiragana",
  "Katakana",
  "Hangul",
  "Bopomofo",
  "Arabic",
  "Hebrew",
  "Armenian",
  "Georgian",
  "Devanagari",
  "Bengali",
  "Gurmukhi",
  "Gujarati",
  "Oriya",
  "Tamil",
  "Telugu",
  "Kannada",
  "Malayalam",
  "Sinhala",
  "Thai",
  "Lao",
  "Tibetan",
  "Myanmar",
  "Khmer",
  "Ethiopic",
  "Cherokee",
  "Mongolian",
  "Syriac",
  "Thaana",
  "Adlam Ahom Anatolian_Hieroglyphs Avestan Balinese Bamum Bassa_Vah Batak Bhaiksuki Brahmi " +
  "Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Chorasmian " +
  "Coptic Cuneiform Cypriot Cypro_Minoan Deseret Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs " +
  "Elbasan Elymaic Garay Glagolitic Gothic Grantha Gunjala_Gondi Gurung_Khema Hanifi_Rohingya " +
  "Hanunoo Hatran Imperial_Aramaic Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi " +
  "Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khojki Khudawadi Kirat_Rai Lepcha Limbu Linear_A " +
  "Linear_B Lisu Lycian Lydian Mahajani Makasar Mandaic Manichaean Marchen Masaram_Gondi " +
  "Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mro " +
  "Multani Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong " +
  "Ogham Ol_Chiki Ol_Onal Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian " +
  "Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur Osage Osmanya Pahawh_Hmong Palmyrene " +
  "Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada " +
  "Shavian Siddham SignWriting Sogdian Sora_Sompeng Soyombo Sundanese Sunuwar Syloti_Nagri " +
  "Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tangsa Tangut Tifinagh Tirhuta Todhri Toto " +
  "Tulu_Tigalari Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square",
].flatMap((names) => names.split(" "));

/** Each script's test, built once; scripts the runtime does not know are left out. */
const SCRIPT_TESTS: ReadonlyArray<readonly [string, RegExp]> = SCRIPTS.flatMap((script) => {
  try {
    return [[script, new RegExp(`^\\p{Script=${script}}$`, "u")] as const];
  } catch {
    return [];
  }
});

const ALLOWED_CHARACTER = /^[\p{L}\p{M}\p{Nd}_.-]$/u;
const BIDI = /^\p{Bidi_Control}$/u;
const INVISIBLE = /^[\p{Cf}\p{Default_Ignorable_Code_Point}]$/u;
const CONTROL = /^\p{Cc}$/u;
const MARK = /^\p{M}$/u;

/** `U+200B`: a code point as people look it up. */
function codePoint(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** The Unicode script of one character (its long name, e.g. `Latin`, `Cyrillic`, `Common`). */
export function scriptOf(char: string): string {
  for (const [script, test] of SCRIPT_TESTS) if (test.test(char)) return script;
  return "Unknown";
}

/** The scripts of `name` other than Common and Inherited, in order of first appearance. */
export function scriptsOf(name: string): string[] {
  const scripts = new Set<string>();
  for (const char of name) {
    const script = scriptOf(char);
    if (script !== "Common" && script !== "Inherited") scripts.add(script);
  }
  return [...scripts];
}

/** `Latin and Cyrillic`, `Latin, Greek and Cyrillic`. */
function listed(items: string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/** Why a character may not be in a new username, or undefined when it may. */
function characterProblem(char: string, first: boolean): string | undefined {
  const at = codePoint(char);
  if (CONTROL.test(char)) return `Username must not contain control characters (${at})`;
  if (BIDI.test(char)) return `Username must not contain bidirectional controls (${at})`;
  if (INVISIBLE.test(char)) return `Username must not contain invisible characters (${at})`;
  const plain = char.normalize("NFKC");
  if (plain !== char) {
    const hint = [...plain].every((c) => ALLOWED_CHARACTER.test(c))
      ? `; type ${plain} instead`
      : "";
    return `Username must not contain fullwidth or compatibility characters (${at}${hint})`;
  }
  if (!ALLOWED_CHARACTER.test(char)) {
    return `Username may contain only letters, digits, _, - and . (not "${char}", ${at})`;
  }
  if (first && MARK.test(char)) return `Username must not start with a combining mark (${at})`;
  return undefined;
}

/**
 * Why `name` may not be registered under the look-alike rule (see the module's doc), as a sentence
 * without its full stop; undefined when it may. The name is taken in its NFC form.
 */
export function lookAlikeProblem(name: string): string | undefined {
  const nfc = name.normalize("NFC");
  let first = true;
  for (const char of nfc) {
    const problem = characterProblem(char, first);
    if (problem) return problem;
    first = false;
  }
  if (nfc.normalize("NFKC") !== nfc) {
    return "Username must not contain fullwidth or compatibility characters";
  }
  const scripts = scriptsOf(nfc);
  if (scripts.length <= 1) return undefined;
  if (ALLOWED_MIXES.some((mix) => scripts.every((script) => mix.has(script)))) return undefined;
  return `Username must not mix scripts (${listed(scripts)})`;
}
