import assert from "node:assert/strict";
import {
  BETA,
  CongestionControl,
  INITIAL_CWND,
  MIN_CWND,
  PACING_GAIN,
  PACING_GAIN_SLOW_START,
  type RtoSettings,
} from "../../lib/p2p/congestion.ts";

/** The engine's defaults, spelled out so that the expected numbers below can be checked by hand. */
const SETTINGS: RtoSettings = { initialRtoMs: 250, minRtoMs: 40, maxRtoMs: 2_000 };

function assertClose(actual: number, expected: number, message?: string): void {
  assert.ok(
    Math.abs(actual - expected) < 1e-9,
    `${message ?? "value"}: expected ${expected}, got ${actual}`,
  );
}

/** A controller out of slow start at cwnd 7 (one loss from the initial 10). */
function afterOneLoss(): CongestionControl {
  const cc = new CongestionControl(SETTINGS);
  assert.equal(cc.onLoss(1, 2), true);
  return cc;
}

/** How many datagrams the pacer lets out back to back at `now`. */
function burstAt(cc: CongestionControl, now: number): number {
  let sent = 0;
  while (cc.pacingDelay(now) === 0 && sent < 1_000) {
    cc.onSend();
    sent++;
  }
  return sent;
}

Deno.test("The congestion constants keep their documented values", () => {
  assert.equal(MIN_CWND, 4);
  assert.equal(INITIAL_CWND, 10);
  assert.equal(BETA, 0.7);
  assert.equal(PACING_GAIN_SLOW_START, 2);
  assert.equal(PACING_GAIN, 1.25);
});

Deno.test("CongestionControl starts in slow start with 10 datagrams and the initial RTO", () => {
  const cc = new CongestionControl(SETTINGS);
  assert.equal(cc.cwnd, 10);
  assert.equal(cc.ssthresh, Infinity);
  assert.equal(cc.inSlowStart, true);
  assert.equal(cc.srtt, 0);
  assert.equal(cc.rttvar, 0);
  assert.equal(cc.rto, 250);
});

Deno.test("CongestionControl lets a datagram go only while fewer than floor(cwnd) are in flight", () => {
  const cc = new CongestionControl(SETTINGS);
  assert.equal(cc.canSend(0), true);
  assert.equal(cc.canSend(9), true);
  assert.equal(cc.canSend(10), false);
  const fractional = afterOneLoss();
  fractional.onAck(1); // 7 + 1/7
  assertClose(fractional.cwnd, 7 + 1 / 7);
  assert.equal(fractional.canSend(6), true);
  assert.equal(fractional.canSend(7), false);
});

Deno.test("CongestionControl grows cwnd by one per ACK in slow start", () => {
  const cc = new CongestionControl(SETTINGS);
  for (let i = 0; i < 5; i++) cc.onAck(1);
  assert.equal(cc.cwnd, 15);
  cc.onAck(3);
  assert.equal(cc.cwnd, 18);
  cc.onAck(0);
  assert.equal(cc.cwnd, 18);
  assert.equal(cc.inSlowStart, true);
});

Deno.test("CongestionControl grows cwnd by about one per RTT in congestion avoidance", () => {
  const cc = afterOneLoss();
  assert.equal(cc.cwnd, 7);
  assert.equal(cc.inSlowStart, false);
  // A whole window acknowledged one datagram at a time: 1/cwnd each, a little under one in all.
  for (let i = 0; i < 7; i++) cc.onAck(1);
  assertClose(cc.cwnd, 7.9453023855524965);
  assert.equal(cc.canSend(6), true);
  assert.equal(cc.canSend(7), false);
  // The first ACK of the next round trip takes it past 8.
  cc.onAck(1);
  assertClose(cc.cwnd, 8.071162919421965);
  assert.equal(cc.canSend(7), true);
  assert.equal(cc.canSend(8), false);
  // A whole window acknowledged by one ACK adds exactly one.
  const once = afterOneLoss();
  once.onAck(7);
  assert.equal(once.cwnd, 8);
  assert.equal(once.ssthresh, 7);
});

Deno.test("CongestionControl cuts cwnd by BETA once for two losses from the same flight", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onAck(10); // cwnd 20
  assert.equal(cc.onLoss(100, 150), true);
  assertClose(cc.cwnd, 14);
  assertClose(cc.ssthresh, 14);
  assert.equal(cc.inSlowStart, false);
  // Sent before the cut at 150 (or at that very moment): part of the same congestion event.
  assert.equal(cc.onLoss(120, 160), false);
  assert.equal(cc.onLoss(150, 170), false);
  assertClose(cc.cwnd, 14);
  // Sent after the cut: a new event, a new cut.
  assert.equal(cc.onLoss(151, 300), true);
  assertClose(cc.cwnd, 9.8);
  assertClose(cc.ssthresh, 9.8);
});

Deno.test("CongestionControl never cuts cwnd below MIN_CWND", () => {
  const cc = new CongestionControl(SETTINGS);
  assert.equal(cc.onLoss(1, 10), true);
  assertClose(cc.cwnd, 7);
  assert.equal(cc.onLoss(11, 20), true);
  assertClose(cc.cwnd, 4.9);
  assert.equal(cc.onLoss(21, 30), true); // 4.9 × 0.7 = 3.43
  assert.equal(cc.cwnd, 4);
  assert.equal(cc.ssthresh, 4);
  assert.equal(cc.onLoss(31, 40), true);
  assert.equal(cc.cwnd, 4);
  assert.equal(cc.canSend(3), true);
  assert.equal(cc.canSend(4), false);
});

Deno.test("CongestionControl caps cwnd at the receiver's window", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onAck(5);
  assert.equal(cc.cwnd, 15); // no cap until the receiver grants a window
  cc.setMaxCwnd(16);
  assert.equal(cc.cwnd, 15); // the cap applies as ACKs grow the window
  cc.onAck(5);
  assert.equal(cc.cwnd, 16);
  cc.onAck(100);
  assert.equal(cc.cwnd, 16);
  assert.equal(cc.canSend(15), true);
  assert.equal(cc.canSend(16), false);
  // In congestion avoidance too.
  const avoiding = afterOneLoss(); // 7
  avoiding.setMaxCwnd(7);
  avoiding.onAck(7);
  assert.equal(avoiding.cwnd, 7);
});

Deno.test("CongestionControl on a timeout halves ssthresh, drops cwnd to the floor and doubles the RTO up to the max", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onAck(10); // cwnd 20
  cc.onRttSample(100); // srtt 100, rttvar 50: RTO 300
  assert.equal(cc.rto, 300);
  cc.onTimeout(1_000);
  assert.equal(cc.ssthresh, 10);
  assert.equal(cc.cwnd, MIN_CWND);
  assert.equal(cc.inSlowStart, true);
  assert.equal(cc.rto, 600);
  cc.onTimeout(1_600);
  assert.equal(cc.ssthresh, 4); // half of 4 is below the floor
  assert.equal(cc.cwnd, 4);
  assert.equal(cc.rto, 1_200);
  cc.onTimeout(2_800);
  assert.equal(cc.rto, 2_000);
  cc.onTimeout(4_800);
  assert.equal(cc.rto, 2_000);
  // The timeout opened a recovery epoch: losses sent before it do not cut again.
  assert.equal(cc.onLoss(4_000, 4_900), false);
  assert.equal(cc.cwnd, 4);
  // An ACK means the path delivers again: the backoff goes, the RTO comes from the RTT again.
  cc.onAck(0);
  assert.equal(cc.rto, 2_000);
  cc.onAck(1);
  assert.equal(cc.rto, 300);
});

Deno.test("CongestionControl grows back in slow start up to ssthresh after a timeout", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onAck(10); // cwnd 20
  cc.onTimeout(500); // ssthresh 10, cwnd 4
  cc.onAck(5);
  assert.equal(cc.cwnd, 9);
  cc.onAck(1);
  assert.equal(cc.cwnd, 10);
  assert.equal(cc.inSlowStart, false);
  cc.onAck(1);
  assertClose(cc.cwnd, 10.1);
});

Deno.test("CongestionControl doubles the initial RTO on timeouts before any RTT sample", () => {
  const cc = new CongestionControl(SETTINGS);
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) {
    cc.onTimeout(i * 1_000);
    seen.push(cc.rto);
  }
  assert.deepEqual(seen, [500, 1_000, 2_000, 2_000, 2_000]);
  cc.onAck(1); // still no sample: back to the initial RTO
  assert.equal(cc.rto, 250);
});

Deno.test("CongestionControl takes the first RTT sample as srtt with half of it as rttvar", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(80);
  assert.equal(cc.srtt, 80);
  assert.equal(cc.rttvar, 40);
  assert.equal(cc.rto, 240); // 80 + 4 × 40
});

Deno.test("CongestionControl smooths later RTT samples with gains of 1/8 and 1/4", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(80);
  cc.onRttSample(40);
  assert.equal(cc.rttvar, 40); // 3/4 × 40 + 1/4 × |80 − 40|
  assert.equal(cc.srtt, 75); // 7/8 × 80 + 1/8 × 40
  assert.equal(cc.rto, 235);
  cc.onRttSample(107);
  assert.equal(cc.rttvar, 38); // 3/4 × 40 + 1/4 × |75 − 107|
  assert.equal(cc.srtt, 79); // 7/8 × 75 + 1/8 × 107
  assert.equal(cc.rto, 231);
});

Deno.test("CongestionControl keeps the RTO between minRtoMs and maxRtoMs", () => {
  const fast = new CongestionControl(SETTINGS);
  fast.onRttSample(2); // 2 + 4 × 1 = 6
  assert.equal(fast.rto, 40);
  const slow = new CongestionControl(SETTINGS);
  slow.onRttSample(1_000); // 1000 + 4 × 500 = 3000
  assert.equal(slow.rto, 2_000);
  const other = new CongestionControl({ initialRtoMs: 100, minRtoMs: 10, maxRtoMs: 500 });
  assert.equal(other.rto, 100);
  other.onRttSample(2);
  assert.equal(other.rto, 10);
  other.onTimeout(0);
  other.onTimeout(0);
  assert.equal(other.rto, 40);
  for (let i = 0; i < 10; i++) other.onTimeout(0);
  assert.equal(other.rto, 500);
});

Deno.test("CongestionControl does not pace before the first RTT sample", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.startPacing(0);
  for (let i = 0; i < 50; i++) cc.onSend();
  assert.equal(cc.pacingDelay(0), 0);
});

Deno.test("CongestionControl paces at twice cwnd per srtt in slow start", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(100);
  cc.startPacing(1_000);
  // cwnd 10: a burst of max(4, 10/4) = 4, then 2 × 10 / 100 = 0.2 datagrams per ms.
  assert.equal(burstAt(cc, 1_000), 4);
  assertClose(cc.pacingDelay(1_000), 5);
  assertClose(cc.pacingDelay(1_002.5), 2.5);
  assert.equal(cc.pacingDelay(1_005.5), 0);
});

Deno.test("CongestionControl paces at 1.25 times cwnd per srtt after slow start", () => {
  const cc = afterOneLoss(); // cwnd 7
  cc.onRttSample(100);
  cc.startPacing(0);
  // 1.25 × 7 / 100 = 0.0875 datagrams per ms: 80/7 ms per datagram.
  assert.equal(burstAt(cc, 0), 4);
  assertClose(cc.pacingDelay(0), 80 / 7);
  assert.equal(cc.pacingDelay(12), 0);
});

Deno.test("CongestionControl waits at least 1 ms when the bucket is empty", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(10); // 2 × 10 / 10 = 2 datagrams per ms: 0.5 ms each
  cc.startPacing(0);
  assert.equal(burstAt(cc, 0), 4);
  assert.equal(cc.pacingDelay(0), 1);
  // After 1 ms the bucket holds 2 datagrams.
  assert.equal(burstAt(cc, 1), 2);
});

Deno.test("CongestionControl lets at most a quarter of cwnd, and never more than 64, out at once", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(100);
  cc.onAck(90); // cwnd 100: a burst of 25
  cc.startPacing(0);
  burstAt(cc, 0);
  assert.equal(burstAt(cc, 60_000), 25);
  cc.onAck(300); // cwnd 400: 100, capped at 64
  assert.equal(burstAt(cc, 120_000), 64);
});

Deno.test("CongestionControl paces as if srtt were at least 0.05 ms", () => {
  const cc = new CongestionControl(SETTINGS);
  cc.onRttSample(0.01); // the smallest sample the sender takes
  cc.startPacing(0);
  burstAt(cc, 0);
  // 2 × 10 / 0.05 = 400 datagrams per ms, not 2,000: 2.5 tokens after 1/160 ms.
  assert.equal(burstAt(cc, 0.00625), 2);
});
