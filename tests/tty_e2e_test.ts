/**
 * End-to-end on a real terminal: the built chat-client runs in tmux at 80×24 against a real
 * chat-server, typed into as a person would, and the pane (with its scrollback) is read back.
 * Ignored, with a one-line hint, where tmux or the permissions to run programs are missing.
 */
import assert from "node:assert/strict";
import {
  CAN_RUN_PROGRAMS,
  CLIENT_BIN,
  loggedInClient,
  startServerProgram,
} from "../testing/programs.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { COMMAND_PROMPT } from "../lib/shared/commands.ts";
import { pinnedNotice } from "../lib/client/tls_connect.ts";
import { hasTmux, startTmux } from "../testing/tmux.ts";

const CREDENTIALS = "yoda jedi\nvader sithlord\n";
/** The pane ends with sh's prompt (`$`, or `#` for root), trailing space trimmed. */
const SHELL_PROMPT = /(^|\n)[$#]$/;
const TMUX = CAN_RUN_PROGRAMS && await hasTmux();
if (CAN_RUN_PROGRAMS && !TMUX) {
  console.log("(terminal end-to-end test ignored: tmux is missing; `apt-get install tmux`)");
}

Deno.test({
  name: "chat-client in tmux at 80×24: no password echo, a message arrives above a wrapped " +
    "half-typed line exactly once, and the shell prompt starts on its own line after exit",
  ignore: !TMUX,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using server = await startServerProgram(CREDENTIALS);
    await using dir = await tempDir("toom-tty-");
    await using tmux = await startTmux({ columns: 80, rows: 24, cwd: dir.path });
    await tmux.waitFor((text) => SHELL_PROMPT.test(text), "the shell prompt");
    // Its own configuration directory, so that the certificate it pins stays out of ~/.config.
    await tmux.type(`XDG_CONFIG_HOME='${dir.path}' '${CLIENT_BIN}' 127.0.0.1 ${server.port} 0`);
    await tmux.keys("Enter");
    await tmux.waitFor((text) => text.endsWith("Username:"), "the username prompt");
    // The notice of the pinned certificate is broken between words to the width, not mid-word by
    // the terminal: every word on screen is one of the notice's (the fingerprint, too wide for a
    // row, is broken after a colon).
    const fingerprint = /fingerprint: ([0-9A-F:]+)/.exec(server.program.stdout)![1]!;
    const notice = pinnedNotice({
      server: `127.0.0.1:${server.port}`,
      fingerprint,
      where: `${dir.path}/toom/known_servers`,
      persistent: true,
    });
    const rows = await tmux.rows();
    const shown = rows.slice(
      rows.findIndex((row) => row.startsWith("First connection to ")),
      rows.findIndex((row) => row.startsWith("Username:")),
    );
    assert.ok(shown.length >= 3, rows.join("\n"));
    const words = new Set(notice.split(/\s+/));
    for (const word of shown.join(" ").split(/\s+/).filter(Boolean)) {
      const pieceOfFingerprint = fingerprint.includes(word) &&
        (word.endsWith(":") || fingerprint.endsWith(word));
      assert.ok(words.has(word) || pieceOfFingerprint, `"${word}" in\n${shown.join("\n")}`);
    }
    await tmux.type("yoda");
    await tmux.keys("Enter");
    await tmux.waitFor((text) => text.endsWith("Password:"), "the password prompt");
    await tmux.type("jedi");
    await tmux.waitFor((text) => text.endsWith("Password:"), "the password typed, unseen");
    await tmux.keys("Enter");
    await tmux.waitFor((text) => /Welcome to TOOM!\n.*\n>$/.test(text), "the command prompt");
    assert.ok(!(await tmux.rows()).join("\n").includes("jedi"), "the password is never shown");

    // A long line, half typed: it wraps over three rows of the 80-column pane.
    const typed = "MSG a message long enough to wrap past the edge of this eighty column pane, " +
      "and then past it once more, since a live area of three rows is what tells an erase " +
      "that is exact from one that guesses, typed while vader writes";
    await tmux.type(typed);
    await tmux.waitFor((text) => text.endsWith("while vader writes"), "the typed line");

    await using vader = await loggedInClient(server, "vader", "sithlord");
    await vader.type("message yoda are you there? this arrives while you are typing");
    await vader.waitFor("Message sent to yoda.");
    const text = await tmux.waitFor(
      (text) => text.includes("vader: are you there?"),
      "the message",
    );
    // From the welcome on, exactly: nothing lost, nothing twice, no stale fragment of the
    // input area above the message, and the input area (tmux keeps its rows as they were
    // drawn, spaces at row ends trimmed) intact below it.
    const lines = text.split("\n");
    const session = lines.slice(lines.indexOf("Welcome to TOOM!"));
    assert.equal(session[1], COMMAND_PROMPT, text);
    assert.match(session[2]!, /^\[\d\d:\d\d\] -!- vader logged in$/, text);
    assert.match(
      session[3]!,
      /^\[\d\d:\d\d\] » vader: are you there\? this arrives while you are typing$/,
      text,
    );
    const input = session.slice(4);
    assert.equal(input.length, 3, `the typed line wraps over three rows:\n${text}`);
    assert.equal(input.join("").replaceAll(" ", ""), `> ${typed}`.replaceAll(" ", ""), text);

    await tmux.keys("Enter");
    await tmux.waitFor((text) => /Message #1 posted at .*\.\n.*\n>$/.test(text), "the reply");
    await tmux.type("OUT");
    await tmux.keys("Enter");
    const end = await tmux.waitFor(
      (text) => /Bye, yoda!\n[$#]$/.test(text),
      "the shell prompt on a line of its own",
    );
    const all = end.split("\n");
    const whole = all.slice(all.indexOf("Welcome to TOOM!"));
    assert.deepEqual(whole.slice(0, 5), [...session.slice(0, 4), `> ${typed}`], end);
    assert.match(whole[5]!, /^Message #1 posted at .*\.$/);
    assert.deepEqual(whole.slice(6, 9), [COMMAND_PROMPT, "> OUT", "Bye, yoda!"], end);
    assert.equal(whole.length, 10, end);
  },
});
