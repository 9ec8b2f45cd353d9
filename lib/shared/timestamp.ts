/**
 * Timestamps as TOOM shows and accepts them: `dd Mmm yyyy hh:mm:ss`, 24-hour, English month,
 * server local time, whole seconds.
 */

const MONTHS = [
  "Jan",
  "Feb",
  "Mar",
  "Apr",
  "May",
  "Jun",
  "Jul",
  "Aug",
  "Sep",
  "Oct",
  "Nov",
  "Dec",
] as const;

const TIMESTAMP_PATTERN = /^(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{1,2}):(\d{2}):(\d{2})$/;

function pad2(value: number): string {
  return String(value).padStart(2, "0");
}

/** Formats epoch milliseconds as `23 Feb 2021 16:01:20` in local time. */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  return `${pad2(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Drops the milliseconds, since every timestamp a user sees has whole seconds. */
export function truncateToSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/**
 * Parses `dd Mmm yyyy hh:mm:ss` (local time) into epoch milliseconds, or returns undefined when
 * the text is not a real date in that form. The month is matched case-insensitively and a
 * one-digit day or hour is accepted, as a person might type them.
 */
export function parseTimestamp(text: string): number | undefined {
  const match = TIMESTAMP_PATTERN.exec(text);
  if (!match) return undefined;
  const [, dayText, monthText, yearText, hourText, minuteText, secondText] = match;
  const month = MONTHS.findIndex((m) => m.toLowerCase() === monthText!.toLowerCase());
  if (month < 0) return undefined;
  const [day, year, hour, minute, second] = [dayText, yearText, hourText, minuteText, secondText]
    .map(Number) as [number, number, number, number, number];
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(year, month, day, hour, minute, second);
  if (date.getFullYear() !== year || date.getMonth() !== month || date.getDate() !== day) {
    return undefined;
  }
  return date.getTime();
}
