/** The client–server wire protocol: frames ↔ typed messages, and malformed input. */
import assert from "node:assert/strict";
import {
  type ClientFrame,
  decodeClientFrame,
  decodeServerFrame,
  encodeFrame,
  PROTOCOL_VERSION,
  ProtocolError,
  type ServerFrame,
} from "../../lib/shared/protocol.ts";
import { issueTickets } from "../../lib/p2p/mod.ts";
import { memoryAddress } from "../../testing/server_fixture.ts";

/** A real ticket, as the server sends one, with a fixed id and key so test names stay stable. */
const TICKET = {
  ...issueTickets({
    kind: "file",
    from: "yoda",
    to: "hans",
    fileName: "notes.txt",
    // Addresses only written into the ticket; nothing is bound.
    fromAddress: memoryAddress("127.0.0.1:7001"),
    toAddress: memoryAddress("127.0.0.1:7002"),
  })[0],
  id: "0123456789abcdef0123456789abcdef",
  key: btoa("k".repeat(32)),
};

function assertProtocolError(
  fn: () => unknown,
  code: ProtocolError["code"],
  message?: string,
): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
    assert.equal(error.code, code);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  });
}

const CLIENT_FRAMES: [string, ClientFrame][] = [
  ['{"t":"hello","v":1}', { t: "hello", v: 1 }],
  ['{"t":"hello","v":1,"agent":"chat-client 1.0.0"}', {
    t: "hello",
    v: 1,
    agent: "chat-client 1.0.0",
  }],
  ['{"t":"user","id":1,"name":"yoda"}', { t: "user", id: 1, name: "yoda" }],
  ['{"t":"pass","id":2,"password":"jedi*knight","udpPort":6666}', {
    t: "pass",
    id: 2,
    password: "jedi*knight",
    udpPort: 6666,
  }],
  ['{"t":"cmd","id":3,"line":"MSG hello  there"}', { t: "cmd", id: 3, line: "MSG hello  there" }],
  ['{"t":"cmd","id":4,"line":""}', { t: "cmd", id: 4, line: "" }],
  ['{"t":"passwd","id":5,"old":"a","new":"b"}', { t: "passwd", id: 5, old: "a", new: "b" }],
  ['{"t":"answer","id":6,"ask":7,"yes":true}', { t: "answer", id: 6, ask: 7, yes: true }],
  ['{"t":"answer","id":6,"ask":7,"yes":false}', { t: "answer", id: 6, ask: 7, yes: false }],
  ['{"t":"ping"}', { t: "ping" }],
  ['{"t":"cmd","id":0,"line":"MSG 日本語 😀 \\"quoted\\""}', {
    t: "cmd",
    id: 0,
    line: 'MSG 日本語 😀 "quoted"',
  }],
];

const SERVER_FRAMES: [string, ServerFrame][] = [
  ['{"t":"hello","v":1,"server":"chat-server 1.0.0"}', {
    t: "hello",
    v: 1,
    server: "chat-server 1.0.0",
  }],
  ['{"t":"reply","id":1,"ok":true,"lines":["Welcome to TOOM!"]}', {
    t: "reply",
    id: 1,
    ok: true,
    lines: ["Welcome to TOOM!"],
  }],
  ['{"t":"reply","id":2,"ok":false,"lines":["Username does not exist"],"code":"unknown-user"}', {
    t: "reply",
    id: 2,
    ok: false,
    lines: ["Username does not exist"],
    code: "unknown-user",
  }],
  ['{"t":"reply","id":3,"ok":true,"lines":[],"more":true,"data":{"need":"password"}}', {
    t: "reply",
    id: 3,
    ok: true,
    lines: [],
    more: true,
    data: { need: "password" },
  }],
  [
    '{"t":"event","kind":"presence","lines":["yoda logged in"],' +
    '"data":{"user":"yoda","what":"logged in"}}',
    {
      t: "event",
      kind: "presence",
      lines: ["yoda logged in"],
      data: { user: "yoda", what: "logged in" },
    },
  ],
  ['{"t":"event","kind":"notice","lines":["hans declined private messaging"]}', {
    t: "event",
    kind: "notice",
    lines: ["hans declined private messaging"],
  }],
  [`{"t":"event","kind":"ticket","lines":[],"data":{"ticket":${JSON.stringify(TICKET)}}}`, {
    t: "event",
    kind: "ticket",
    lines: [],
    data: { ticket: TICKET },
  }],
  [
    '{"t":"event","kind":"transfer-revoked","lines":["Stopped receiving a.txt from yoda: you blocked yoda."],' +
    '"data":{"peer":"yoda","ticketId":"0123456789abcdef0123456789abcdef"}}',
    {
      t: "event",
      kind: "transfer-revoked",
      lines: ["Stopped receiving a.txt from yoda: you blocked yoda."],
      data: { peer: "yoda", ticketId: "0123456789abcdef0123456789abcdef" },
    },
  ],
  ['{"t":"pong"}', { t: "pong" }],
  ['{"t":"error","code":"frame-too-large","text":"Frame exceeds 65536 bytes"}', {
    t: "error",
    code: "frame-too-large",
    text: "Frame exceeds 65536 bytes",
  }],
];

Deno.test("PROTOCOL_VERSION is 1", () => {
  assert.equal(PROTOCOL_VERSION, 1);
});

for (const [text, frame] of CLIENT_FRAMES) {
  Deno.test(`decodeClientFrame() reads ${text}`, () => {
    assert.deepEqual(decodeClientFrame(text), frame);
  });
  Deno.test(`encodeFrame() writes ${text}`, () => {
    assert.equal(encodeFrame(frame), text);
    assert.deepEqual(decodeClientFrame(encodeFrame(frame)), frame);
  });
}

for (const [text, frame] of SERVER_FRAMES) {
  Deno.test(`decodeServerFrame() reads ${text}`, () => {
    assert.deepEqual(decodeServerFrame(text), frame);
  });
  Deno.test(`encodeFrame() writes ${text}`, () => {
    assert.equal(encodeFrame(frame), text);
    assert.deepEqual(decodeServerFrame(encodeFrame(frame)), frame);
  });
}

Deno.test("encodeFrame() never emits a newline, even for text containing one", () => {
  const text = encodeFrame({ t: "cmd", id: 1, line: "a\nb\r\nc\u2028d" });
  assert.ok(!text.includes("\n"));
  assert.ok(!text.includes("\r"));
  assert.deepEqual(decodeClientFrame(text), { t: "cmd", id: 1, line: "a\nb\r\nc\u2028d" });
});

Deno.test("decodeClientFrame() accepts fields in any order and whitespace between them", () => {
  assert.deepEqual(decodeClientFrame(' { "name" : "yoda" , "id" : 9 , "t" : "user" } '), {
    t: "user",
    id: 9,
    name: "yoda",
  });
});

Deno.test("decodeClientFrame() accepts negative and zero integer ids", () => {
  assert.deepEqual(decodeClientFrame('{"t":"cmd","id":-1,"line":"x"}'), {
    t: "cmd",
    id: -1,
    line: "x",
  });
  assert.deepEqual(decodeClientFrame('{"t":"cmd","id":0,"line":"x"}'), {
    t: "cmd",
    id: 0,
    line: "x",
  });
});

Deno.test("decodeClientFrame() accepts 1.0 as the integer 1", () => {
  assert.deepEqual(decodeClientFrame('{"t":"cmd","id":1.0,"line":"x"}'), {
    t: "cmd",
    id: 1,
    line: "x",
  });
});

const NOT_JSON = [
  "",
  " ",
  "hello",
  "{",
  '{"t":"ping"',
  "{'t':'ping'}",
  '{"t":"ping",}',
  '{t:"ping"}',
  '{"t":"ping"} {"t":"ping"}',
  "NaN",
  "\ufeff{}",
];

for (const text of NOT_JSON) {
  Deno.test(`decodeClientFrame() rejects non-JSON ${JSON.stringify(text)} as malformed`, () => {
    assertProtocolError(() => decodeClientFrame(text), "malformed", "Frame is not valid JSON");
  });
}

const NOT_OBJECTS = ["null", "[]", '[{"t":"ping"}]', '"ping"', "42", "true", "false"];

for (const text of NOT_OBJECTS) {
  Deno.test(`decodeClientFrame() rejects the JSON ${text} as not an object`, () => {
    assertProtocolError(() => decodeClientFrame(text), "malformed", "Frame is not a JSON object");
  });
  Deno.test(`decodeServerFrame() rejects the JSON ${text} as not an object`, () => {
    assertProtocolError(() => decodeServerFrame(text), "malformed", "Frame is not a JSON object");
  });
}

const NO_TYPE = ["{}", '{"type":"ping"}', '{"t":1}', '{"t":null}', '{"t":["ping"]}', '{"t":{}}'];

for (const text of NO_TYPE) {
  Deno.test(`decodeClientFrame() rejects ${text} as having no type`, () => {
    assertProtocolError(() => decodeClientFrame(text), "malformed", "Frame has no type");
  });
}

const UNKNOWN_TYPES = [
  "",
  "PING",
  "Ping",
  "nope",
  "pong",
  "reply",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "prototype",
];

for (const type of UNKNOWN_TYPES) {
  Deno.test(`decodeClientFrame() rejects the type ${JSON.stringify(type)} as unknown`, () => {
    assertProtocolError(
      () => decodeClientFrame(JSON.stringify({ t: type, id: 1 })),
      "unknown-frame",
      `Unknown frame type "${type}"`,
    );
  });
}

for (const type of ["__proto__", "constructor", "toString", "user", "cmd", "ping", "PONG"]) {
  Deno.test(`decodeServerFrame() rejects the type ${JSON.stringify(type)} as unknown`, () => {
    assertProtocolError(
      () => decodeServerFrame(JSON.stringify({ t: type })),
      "unknown-frame",
      `Unknown frame type "${type}"`,
    );
  });
}

Deno.test("decodeClientFrame() rejects a literal __proto__ key as the type", () => {
  assertProtocolError(
    () => decodeClientFrame('{"t":"__proto__","__proto__":{"t":"ping"}}'),
    "unknown-frame",
  );
});

Deno.test("decodeClientFrame() does not let a __proto__ member stand in for a field", () => {
  assertProtocolError(
    () => decodeClientFrame('{"t":"user","__proto__":{"id":1,"name":"yoda"}}'),
    "malformed",
  );
});

const BAD_CLIENT_FIELDS: [string, string][] = [
  ['{"t":"hello"}', "v"],
  ['{"t":"hello","v":"1"}', "v"],
  ['{"t":"hello","v":1.5}', "v"],
  ['{"t":"user","name":"yoda"}', "id"],
  ['{"t":"user","id":"1","name":"yoda"}', "id"],
  ['{"t":"user","id":1.5,"name":"yoda"}', "id"],
  ['{"t":"user","id":null,"name":"yoda"}', "id"],
  ['{"t":"user","id":true,"name":"yoda"}', "id"],
  ['{"t":"user","id":[1],"name":"yoda"}', "id"],
  ['{"t":"user","id":1e300,"name":"yoda"}', "id"],
  ['{"t":"user","id":9007199254740992,"name":"yoda"}', "id"],
  ['{"t":"user","id":-9007199254740992,"name":"yoda"}', "id"],
  ['{"t":"user","id":123456789012345678901234567890,"name":"yoda"}', "id"],
  ['{"t":"user","id":1}', "name"],
  ['{"t":"user","id":1,"name":42}', "name"],
  ['{"t":"user","id":1,"name":null}', "name"],
  ['{"t":"pass","id":1,"password":"p"}', "udpPort"],
  ['{"t":"pass","id":1,"password":"p","udpPort":"6666"}', "udpPort"],
  ['{"t":"pass","id":1,"password":"p","udpPort":66.5}', "udpPort"],
  ['{"t":"pass","id":1,"udpPort":6666}', "password"],
  ['{"t":"cmd","id":1}', "line"],
  ['{"t":"cmd","id":1,"line":["MSG","x"]}', "line"],
  ['{"t":"cmd","line":"MSG x"}', "id"],
  ['{"t":"passwd","id":1,"old":"a"}', "new"],
  ['{"t":"passwd","id":1,"new":"b"}', "old"],
  ['{"t":"answer","id":1,"ask":2,"yes":"y"}', "yes"],
  ['{"t":"answer","id":1,"ask":2,"yes":1}', "yes"],
  ['{"t":"answer","id":1,"yes":true}', "ask"],
  ['{"t":"answer","id":1,"ask":2.5,"yes":true}', "ask"],
];

for (const [text, field] of BAD_CLIENT_FIELDS) {
  Deno.test(`decodeClientFrame() rejects ${text} for its "${field}"`, () => {
    const type = (JSON.parse(text) as { t: string }).t;
    assertProtocolError(
      () => decodeClientFrame(text),
      "malformed",
      `Frame "${type}" has a missing or bad "${field}"`,
    );
  });
}

const BAD_OPTIONAL_FIELDS: [string, string, (text: string) => unknown][] = [
  ['{"t":"hello","v":1,"agent":7}', "agent", decodeClientFrame],
  ['{"t":"hello","v":1,"agent":null}', "agent", decodeClientFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"code":3}', "code", decodeServerFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"more":false}', "more", decodeServerFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"more":"yes"}', "more", decodeServerFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"data":[]}', "data", decodeServerFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"data":null}', "data", decodeServerFrame],
  ['{"t":"reply","id":1,"ok":true,"lines":[],"data":"x"}', "data", decodeServerFrame],
  ['{"t":"event","kind":"notice","lines":[],"data":5}', "data", decodeServerFrame],
];

const BAD_DATA: [string, string][] = [
  [
    '{"t":"event","kind":"presence","lines":[]}',
    'Event "presence" data has a missing or bad "user"',
  ],
  [
    '{"t":"event","kind":"presence","lines":[],"data":{"user":"yoda","what":"left"}}',
    'Event "presence" data has a missing or bad "what"',
  ],
  [
    '{"t":"event","kind":"message","lines":[],"data":{"from":7}}',
    'Event "message" data has a missing or bad "from"',
  ],
  [
    '{"t":"event","kind":"ask","lines":[],"data":{"ask":"1","from":"yoda"}}',
    'Event "ask" data has a missing or bad "ask"',
  ],
  [
    '{"t":"event","kind":"ticket","lines":[],"data":{"ticket":{"key":"abc","port":666}}}',
    'Event "ticket" data has a missing or bad "ticket"',
  ],
  [
    '{"t":"event","kind":"notice","lines":[],"data":{"peer":1}}',
    'Event "notice" data has a bad "peer"',
  ],
  [
    '{"t":"event","kind":"transfer-revoked","lines":[],"data":{"peer":"yoda"}}',
    'Event "transfer-revoked" data has a missing or bad "ticketId"',
  ],
  [
    '{"t":"event","kind":"logout","lines":[],"data":{"reason":"x"}}',
    'Event "logout" data has a missing or bad "reason"',
  ],
  [
    '{"t":"reply","id":1,"ok":true,"lines":[],"data":{"need":"pin"}}',
    'Reply data has a bad "need"',
  ],
  [
    '{"t":"reply","id":1,"ok":true,"lines":[],"data":{"ticket":{}}}',
    'Reply data has a bad "ticket"',
  ],
];

for (const [text, message] of BAD_DATA) {
  Deno.test(`decodeServerFrame() checks data per kind: ${message}`, () => {
    assertProtocolError(() => decodeServerFrame(text), "malformed", message);
  });
}

Deno.test("decodeServerFrame() reads an event of an unknown kind as a notice", () => {
  assert.deepEqual(
    decodeServerFrame('{"t":"event","kind":"poll","lines":["Vote now"],"data":{"id":3}}'),
    { t: "event", kind: "notice", lines: ["Vote now"] },
  );
});

for (const [text, field, decode] of BAD_OPTIONAL_FIELDS) {
  Deno.test(`${decode.name}() rejects ${text} for its optional "${field}"`, () => {
    const type = (JSON.parse(text) as { t: string }).t;
    assertProtocolError(() => decode(text), "malformed", `Frame "${type}" has a bad "${field}"`);
  });
}

const BAD_SERVER_FIELDS: [string, string][] = [
  ['{"t":"hello","v":1}', "server"],
  ['{"t":"hello","server":"s"}', "v"],
  ['{"t":"reply","id":1,"ok":true}', "lines"],
  ['{"t":"reply","id":1,"ok":true,"lines":"Welcome"}', "lines"],
  ['{"t":"reply","id":1,"ok":true,"lines":["a",2]}', "lines"],
  ['{"t":"reply","id":1,"ok":true,"lines":[null]}', "lines"],
  ['{"t":"reply","id":1,"ok":"true","lines":[]}', "ok"],
  ['{"t":"reply","id":0.5,"ok":true,"lines":[]}', "id"],
  ['{"t":"reply","ok":true,"lines":[]}', "id"],
  ['{"t":"event","lines":[]}', "kind"],
  ['{"t":"event","kind":"notice"}', "lines"],
  ['{"t":"error","code":"x"}', "text"],
  ['{"t":"error","text":"x"}', "code"],
];

for (const [text, field] of BAD_SERVER_FIELDS) {
  Deno.test(`decodeServerFrame() rejects ${text} for its "${field}"`, () => {
    const type = (JSON.parse(text) as { t: string }).t;
    assertProtocolError(
      () => decodeServerFrame(text),
      "malformed",
      `Frame "${type}" has a missing or bad "${field}"`,
    );
  });
}

Deno.test("decodeServerFrame() reads the frame budget a server announces in hello", () => {
  const hello: ServerFrame = {
    t: "hello",
    v: 1,
    server: "s",
    limits: { burst: 100, perSecond: 50 },
  };
  assert.deepEqual(decodeServerFrame(encodeFrame(hello)), hello);
  assert.deepEqual(
    decodeServerFrame('{"t":"hello","v":1,"server":"s","limits":{"burst":3,"perSecond":0.5}}'),
    { t: "hello", v: 1, server: "s", limits: { burst: 3, perSecond: 0.5 } },
  );
});

const BAD_LIMITS = [
  "{}",
  '{"burst":100}',
  '{"perSecond":50}',
  '{"burst":0,"perSecond":50}',
  '{"burst":100,"perSecond":-1}',
  '{"burst":"100","perSecond":50}',
  '{"burst":100,"perSecond":1e999}',
  "[100,50]",
  '"100/50"',
  "null",
];

for (const limits of BAD_LIMITS) {
  Deno.test(`decodeServerFrame() rejects hello limits ${limits}`, () => {
    assertProtocolError(
      () => decodeServerFrame(`{"t":"hello","v":1,"server":"s","limits":${limits}}`),
      "malformed",
      'Frame "hello" has a bad "limits"',
    );
  });
}

Deno.test("decodeClientFrame() rejects server-only frames and vice versa", () => {
  assertProtocolError(() => decodeClientFrame('{"t":"pong"}'), "unknown-frame");
  assertProtocolError(() => decodeServerFrame('{"t":"ping"}'), "unknown-frame");
  assertProtocolError(
    () => decodeServerFrame('{"t":"cmd","id":1,"line":"ATU"}'),
    "unknown-frame",
  );
});

Deno.test("decodeClientFrame() keeps extra fields it does not know", () => {
  assert.deepEqual(decodeClientFrame('{"t":"ping","extra":[1,2]}'), { t: "ping", extra: [1, 2] });
});

Deno.test("decodeClientFrame() handles a very long string field", () => {
  const line = "x".repeat(60_000);
  assert.deepEqual(decodeClientFrame(encodeFrame({ t: "cmd", id: 1, line })), {
    t: "cmd",
    id: 1,
    line,
  });
});

Deno.test("decodeClientFrame() rejects a deeply nested value without crashing", () => {
  const text = '{"t":"cmd","id":1,"line":' + "[".repeat(5000) + "]".repeat(5000) + "}";
  assertProtocolError(() => decodeClientFrame(text), "malformed");
});

Deno.test("ProtocolError has its name, code and message", () => {
  const error = new ProtocolError("unknown-frame", 'Unknown frame type "x"');
  assert.ok(error instanceof Error);
  assert.equal(error.name, "ProtocolError");
  assert.equal(error.code, "unknown-frame");
});

// A cmd's optional `ref` (a client's id for what it sends) and the `ref` a message event carries.

const WITH_REF: [string, ClientFrame | ServerFrame][] = [
  ['{"t":"cmd","id":3,"line":"message hans hi","ref":"00ff10aa7b3c9d0e"}', {
    t: "cmd",
    id: 3,
    line: "message hans hi",
    ref: "00ff10aa7b3c9d0e",
  }],
  [
    '{"t":"event","kind":"message","lines":["yoda: hi"],' +
    '"data":{"from":"yoda","ref":"00ff10aa7b3c9d0e"}}',
    {
      t: "event",
      kind: "message",
      lines: ["yoda: hi"],
      data: { from: "yoda", ref: "00ff10aa7b3c9d0e" },
    },
  ],
];

for (const [text, frame] of WITH_REF) {
  Deno.test(`a ref round-trips: ${text}`, () => {
    const decode = frame.t === "cmd" ? decodeClientFrame : decodeServerFrame;
    assert.deepEqual(decode(text), frame);
    assert.deepEqual(JSON.parse(encodeFrame(frame)), JSON.parse(text));
  });
}

const BAD_REFS = ['""', "7", "null", '"has space"', '"x\\u001b[2J"', `"${"a".repeat(65)}"`];

for (const ref of BAD_REFS) {
  Deno.test(`decodeClientFrame() and decodeServerFrame() reject the ref ${ref}`, () => {
    assertProtocolError(
      () => decodeClientFrame(`{"t":"cmd","id":1,"line":"message hans hi","ref":${ref}}`),
      "malformed",
      'Frame "cmd" has a bad "ref"',
    );
    assertProtocolError(
      () =>
        decodeServerFrame(
          `{"t":"event","kind":"message","lines":[],"data":{"from":"yoda","ref":${ref}}}`,
        ),
      "malformed",
      'Event "message" data has a bad "ref"',
    );
  });
}
