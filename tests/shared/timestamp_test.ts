/** Timestamps (dd Mmm yyyy hh:mm:ss) of lib/shared/timestamp.ts: formatting, strict parsing. */
import assert from "node:assert/strict";
import { formatTimestamp, parseTimestamp, truncateToSecond } from "../../lib/shared/timestamp.ts";

// Every expectation is built from local-time Date parts, so the tests hold in any time zone.
function local(
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
): number {
  return new Date(year, month, day, hour, minute, second).getTime();
}

const FORMATTED: [number, string][] = [
  [local(2021, 1, 23, 16, 1, 20), "23 Feb 2021 16:01:20"],
  [local(2021, 0, 1, 0, 0, 0), "01 Jan 2021 00:00:00"],
  [local(2021, 11, 31, 23, 59, 59), "31 Dec 2021 23:59:59"],
  [local(2020, 1, 29, 9, 5, 7), "29 Feb 2020 09:05:07"],
  [local(2019, 2, 3, 12, 0, 0), "03 Mar 2019 12:00:00"],
  [local(2019, 3, 4, 13, 0, 0), "04 Apr 2019 13:00:00"],
  [local(2019, 4, 5, 14, 0, 0), "05 May 2019 14:00:00"],
  [local(2019, 5, 6, 15, 0, 0), "06 Jun 2019 15:00:00"],
  [local(2019, 6, 7, 16, 0, 0), "07 Jul 2019 16:00:00"],
  [local(2019, 7, 8, 17, 0, 0), "08 Aug 2019 17:00:00"],
  [local(2019, 8, 9, 18, 0, 0), "09 Sep 2019 18:00:00"],
  [local(2019, 9, 10, 19, 0, 0), "10 Oct 2019 19:00:00"],
  [local(2019, 10, 11, 20, 0, 0), "11 Nov 2019 20:00:00"],
];

for (const [ms, text] of FORMATTED) {
  Deno.test(`formatTimestamp() writes ${text}`, () => {
    assert.equal(formatTimestamp(ms), text);
  });
  Deno.test(`parseTimestamp() reads ${text}`, () => {
    assert.equal(parseTimestamp(text), ms);
  });
}

Deno.test("formatTimestamp() drops milliseconds rather than rounding", () => {
  assert.equal(formatTimestamp(local(2021, 1, 23, 15, 0, 0) + 999), "23 Feb 2021 15:00:00");
});

Deno.test("formatTimestamp() uses a 24-hour clock with no AM/PM", () => {
  assert.equal(formatTimestamp(local(2021, 1, 23, 0, 30, 0)), "23 Feb 2021 00:30:00");
  assert.equal(formatTimestamp(local(2021, 1, 23, 12, 30, 0)), "23 Feb 2021 12:30:00");
  assert.equal(formatTimestamp(local(2021, 1, 23, 23, 30, 0)), "23 Feb 2021 23:30:00");
});

Deno.test("formatTimestamp() matches the dd Mmm yyyy hh:mm:ss shape", () => {
  assert.match(formatTimestamp(Date.now()), /^\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}$/);
});

Deno.test("truncateToSecond() drops milliseconds", () => {
  assert.equal(truncateToSecond(1_614_092_400_999), 1_614_092_400_000);
  assert.equal(truncateToSecond(1_614_092_400_000), 1_614_092_400_000);
});

Deno.test("parseTimestamp() round-trips every day of a leap year and a common year", () => {
  for (const year of [2020, 2021]) {
    for (let day = 0; day < 366; day++) {
      const ms = new Date(year, 0, 1 + day, 12, 34, 56).getTime();
      const text = formatTimestamp(ms);
      assert.equal(parseTimestamp(text), ms, text);
    }
  }
});

Deno.test("parseTimestamp() round-trips every hour of a day", () => {
  for (let hour = 0; hour < 24; hour++) {
    const ms = local(2021, 5, 15, hour, 7, 8);
    assert.equal(parseTimestamp(formatTimestamp(ms)), ms);
  }
});

Deno.test("parseTimestamp() reads the month case-insensitively", () => {
  const expected = local(2021, 1, 23, 15, 0, 0);
  for (const month of ["Feb", "feb", "FEB", "fEB"]) {
    assert.equal(parseTimestamp(`23 ${month} 2021 15:00:00`), expected, month);
  }
});

Deno.test("parseTimestamp() accepts a one-digit day and hour", () => {
  assert.equal(parseTimestamp("3 Feb 2021 5:06:07"), local(2021, 1, 3, 5, 6, 7));
});

Deno.test("parseTimestamp() accepts 29 Feb in leap years only", () => {
  assert.equal(parseTimestamp("29 Feb 2020 00:00:00"), local(2020, 1, 29));
  assert.equal(parseTimestamp("29 Feb 2000 00:00:00"), local(2000, 1, 29));
  assert.equal(parseTimestamp("29 Feb 2021 00:00:00"), undefined);
  assert.equal(parseTimestamp("29 Feb 1900 00:00:00"), undefined);
});

const REJECTED = [
  "31 Feb 2021 10:00:00",
  "30 Feb 2020 10:00:00",
  "31 Apr 2021 10:00:00",
  "31 Jun 2021 10:00:00",
  "31 Sep 2021 10:00:00",
  "31 Nov 2021 10:00:00",
  "32 Jan 2021 10:00:00",
  "00 Jan 2021 10:00:00",
  "23 Feb 2021 24:00:00",
  "23 Feb 2021 12:60:00",
  "23 Feb 2021 12:00:60",
  "23 Feb 2021 99:99:99",
  "23 February 2021 15:00:00",
  "23 Fev 2021 15:00:00",
  "23 Fbr 2021 15:00:00",
  "23 02 2021 15:00:00",
  "23 Feb. 2021 15:00:00",
  "23 Fe 2021 15:00:00",
  "23 Feb 21 15:00:00",
  "23 Feb 02021 15:00:00",
  "23  Feb 2021 15:00:00",
  "23 Feb  2021 15:00:00",
  "23 Feb 2021  15:00:00",
  " 23 Feb 2021 15:00:00",
  "23 Feb 2021 15:00:00 ",
  "23 Feb 2021 15:00:00 extra",
  "23 Feb 2021 15:00:00x",
  "23 Feb 2021 15:00",
  "23 Feb 2021 15:0:00",
  "23 Feb 2021 15:00:0",
  "23 Feb 2021 15:00:00.000",
  "23 Feb 2021 3pm",
  "23 Feb 2021 15.00.00",
  "23-Feb-2021 15:00:00",
  "23\tFeb 2021 15:00:00",
  "023 Feb 2021 15:00:00",
  "23 Feb 2021 015:00:00",
  "-1 Feb 2021 15:00:00",
  "23 Feb 2021\n15:00:00",
  "23 Feb 2021 15:00:00\n",
  "２３ Feb 2021 15:00:00",
  "",
  "yesterday",
  "2021-02-23T15:00:00",
];

for (const text of REJECTED) {
  Deno.test(`parseTimestamp() rejects ${JSON.stringify(text)}`, () => {
    assert.equal(parseTimestamp(text), undefined);
  });
}
