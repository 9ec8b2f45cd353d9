/**
 * The broker's view of peer-to-peer private sessions: which pairs of users have one (with its
 * ticket id), and the consent questions still waiting for an answer.
 */

/** A `startprivate` request waiting for the target's y/n. */
export interface PendingAsk {
  id: number;
  from: string;
  to: string;
  at: number;
}

/** Private sessions and pending requests. */
export class PrivateSessions {
  readonly #pairs = new Map<string, Map<string, string>>();
  readonly #asks = new Map<number, PendingAsk>();
  #nextAsk = 1;

  /** The ticket id of the session between `a` and `b`, if any. */
  between(a: string, b: string): string | undefined {
    return this.#pairs.get(a)?.get(b);
  }

  /** Records a session between two users. */
  open(a: string, b: string, ticketId: string): void {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const peers = this.#pairs.get(x) ?? new Map<string, string>();
      peers.set(y, ticketId);
      this.#pairs.set(x, peers);
    }
  }

  /** Ends the session between two users; returns its ticket id if there was one. */
  close(a: string, b: string): string | undefined {
    const id = this.between(a, b);
    this.#pairs.get(a)?.delete(b);
    this.#pairs.get(b)?.delete(a);
    return id;
  }

  /** Ends every session of `user`; returns the peers and ticket ids that were ended. */
  closeAll(user: string): Array<{ peer: string; ticketId: string }> {
    const ended = [...(this.#pairs.get(user) ?? new Map<string, string>())].map(
      ([peer, ticketId]) => ({ peer, ticketId }),
    );
    for (const { peer } of ended) this.close(user, peer);
    this.#pairs.delete(user);
    return ended;
  }

  /** Opens a consent question and returns it. */
  ask(from: string, to: string, at: number): PendingAsk {
    const ask = { id: this.#nextAsk++, from, to, at };
    this.#asks.set(ask.id, ask);
    return ask;
  }

  /** Whether `from` already waits for an answer from `to`. */
  asking(from: string, to: string): boolean {
    return [...this.#asks.values()].some((a) => a.from === from && a.to === to);
  }

  /** Takes the question `id` addressed to `to`, if it is still open. */
  takeAsk(id: number, to: string): PendingAsk | undefined {
    const ask = this.#asks.get(id);
    if (!ask || ask.to !== to) return undefined;
    this.#asks.delete(id);
    return ask;
  }

  /** Removes and returns the questions that `user` asked or was asked. */
  dropAsks(user: string): PendingAsk[] {
    const dropped = [...this.#asks.values()].filter((a) => a.from === user || a.to === user);
    for (const ask of dropped) this.#asks.delete(ask.id);
    return dropped;
  }

  /** Removes and returns the questions asked before `before`. */
  expireAsks(before: number): PendingAsk[] {
    const expired = [...this.#asks.values()].filter((a) => a.at < before);
    for (const ask of expired) this.#asks.delete(ask.id);
    return expired;
  }
}
