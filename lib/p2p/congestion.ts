/**
 * The file sender's congestion control (AIMD window, RFC 6298 RTO, pacing) as pure arithmetic over
 * the ACKs, losses, timeouts and clock readings it is given, so it can be tested without a network.
 *
 * @module
 */

/** Congestion window floor, in datagrams: below this a single loss stalls on the RTO. */
export const MIN_CWND = 4;
/** Initial congestion window, in datagrams (as in TCP since RFC 6928). */
export const INITIAL_CWND = 10;
/** Multiplicative decrease on a loss event (CUBIC's beta; gentler than Reno's 0.5). */
export const BETA = 0.7;
/** Pacing runs ahead of cwnd/srtt in slow start so that the window can still double per RTT. */
export const PACING_GAIN_SLOW_START = 2;
/** Pacing runs a little ahead of cwnd/srtt after slow start so that it never limits the window. */
export const PACING_GAIN = 1.25;

/** The RTO bounds the controller works within, in ms (from the engine settings). */
export interface RtoSettings {
  /** RTO before the first RTT sample. */
  initialRtoMs: number;
  minRtoMs: number;
  maxRtoMs: number;
}

/**
 * Congestion window, slow-start threshold, RTT estimate, RTO and pacing of one sender. It never
 * reads a clock or sets a timer: the sender passes in `now` (ms) and samples, and asks it how much
 * may be in flight, when the next datagram may go and how long to wait before a timeout.
 */
export class CongestionControl {
  #cwnd = INITIAL_CWND;
  #ssthresh = Infinity;
  /** When the last decrease happened: losses of datagrams sent before it belong to that event. */
  #recoveryStart = -Infinity;
  #srtt = 0;
  #rttvar = 0;
  #rto: number;
  /** The window can never usefully exceed what the receiver granted. */
  #maxCwnd = Infinity;
  #tokens = INITIAL_CWND;
  #tokensAt = 0;
  readonly #settings: Readonly<RtoSettings>;

  /** Starts in slow start with the initial window, no RTT sample and the initial RTO. */
  constructor(settings: Readonly<RtoSettings>) {
    this.#settings = settings;
    this.#rto = settings.initialRtoMs;
  }

  /** Congestion window in datagrams (fractional: congestion avoidance grows it by 1/cwnd). */
  get cwnd(): number {
    return this.#cwnd;
  }

  /** Slow-start threshold in datagrams; Infinity until the first loss or timeout. */
  get ssthresh(): number {
    return this.#ssthresh;
  }

  /** True while cwnd grows by one per acknowledged datagram. */
  get inSlowStart(): boolean {
    return this.#cwnd < this.#ssthresh;
  }

  /** Smoothed RTT in ms; 0 until the first sample. */
  get srtt(): number {
    return this.#srtt;
  }

  /** RTT variation in ms; 0 until the first sample. */
  get rttvar(): number {
    return this.#rttvar;
  }

  /** Retransmission timeout in ms, including any timeout backoff. */
  get rto(): number {
    return this.#rto;
  }

  /** Caps cwnd at the receiver's window (applied as ACKs grow it), in datagrams. */
  setMaxCwnd(datagrams: number): void {
    this.#maxCwnd = datagrams;
  }

  /** Whether the window allows one more datagram with `inFlight` already outstanding. */
  canSend(inFlight: number): boolean {
    return inFlight < Math.floor(this.#cwnd);
  }

  /** Takes an RTT sample in ms (RFC 6298) and recomputes the RTO, dropping any backoff. */
  onRttSample(ms: number): void {
    if (this.#srtt === 0) {
      this.#srtt = ms;
      this.#rttvar = ms / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - ms);
      this.#srtt = 0.875 * this.#srtt + 0.125 * ms;
    }
    this.#rto = this.#computeRto();
  }

  /**
   * `newlyAcked` datagrams left the network: grows cwnd (by one each in slow start, by 1/cwnd each
   * after, so about one per RTT) and clears the RTO backoff, since the path is delivering again.
   */
  onAck(newlyAcked: number): void {
    if (newlyAcked <= 0) return;
    this.#rto = this.#computeRto();
    if (this.#cwnd < this.#ssthresh) this.#cwnd += newlyAcked;
    else this.#cwnd += newlyAcked / this.#cwnd;
    this.#cwnd = Math.min(this.#cwnd, this.#maxCwnd);
  }

  /**
   * A datagram sent at `sentAt` was declared lost at `now`. Cuts cwnd by BETA (not below MIN_CWND)
   * unless it was sent before the last cut: one flight's losses are one congestion event, and
   * cutting for each would collapse the window. Returns whether it cut.
   */
  onLoss(sentAt: number, now: number): boolean {
    if (sentAt <= this.#recoveryStart) return false;
    this.#cwnd = Math.max(this.#cwnd * BETA, MIN_CWND);
    this.#ssthresh = this.#cwnd;
    this.#recoveryStart = now;
    return true;
  }

  /**
   * The RTO fired at `now`: nothing is getting through, so restart from the floor in slow start up
   * to half the old window, and back the RTO off (doubling, up to maxRtoMs) until an ACK arrives.
   */
  onTimeout(now: number): void {
    this.#ssthresh = Math.max(this.#cwnd / 2, MIN_CWND);
    this.#cwnd = MIN_CWND;
    this.#recoveryStart = now;
    this.#rto = Math.min(this.#rto * 2, this.#settings.maxRtoMs);
  }

  /** Starts the pacing clock at `now`: the bucket refills from then, not from time 0. */
  startPacing(now: number): void {
    this.#tokensAt = now;
  }

  /**
   * Token bucket: how long to wait from `now` before the next datagram may go (0 = now). It
   * refills at gain · cwnd / srtt datagrams per ms with a burst of max(4, min(cwnd/4, 64));
   * nothing is paced before the first RTT sample, when there is no rate to pace at.
   */
  pacingDelay(now: number): number {
    if (this.#srtt === 0) return 0;
    const gain = this.#cwnd < this.#ssthresh ? PACING_GAIN_SLOW_START : PACING_GAIN;
    const rate = (gain * this.#cwnd) / Math.max(this.#srtt, 0.05); // datagrams per ms
    const burst = Math.max(4, Math.min(this.#cwnd / 4, 64));
    this.#tokens = Math.min(burst, this.#tokens + (now - this.#tokensAt) * rate);
    this.#tokensAt = now;
    if (this.#tokens >= 1) return 0;
    // Timers are coarse: wait at least 1 ms and let the bucket refill for a small burst.
    return Math.max(1, (1 - this.#tokens) / rate);
  }

  /** A datagram went out: it spends one pacing token (the bucket may go negative). */
  onSend(): void {
    this.#tokens--;
  }

  #computeRto(): number {
    const s = this.#settings;
    if (this.#srtt === 0) return s.initialRtoMs;
    return Math.min(Math.max(this.#srtt + 4 * this.#rttvar, s.minRtoMs), s.maxRtoMs);
  }
}
