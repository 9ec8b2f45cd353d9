/**
 * The login state machine: `user` then `pass` (or a new password when registering), the lockout
 * after repeated failures, and `passwd` for a logged-in user. It answers each frame; a login that
 * succeeds is handed to the roster by the server core.
 */
import { CommandError, UnavailableError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import { type AccountStore, WrongPasswordError } from "./accounts.ts";
import { accepted, type Cluster } from "./cluster/cluster.ts";
import { passwordProblem, usernameProblem } from "./credentials.ts";
import { ServerBusyError } from "./hash_pool.ts";
import type { FailureOutcome, LoginGuard } from "./lockout.ts";
import type { Store } from "./store/store.ts";
import { lookAlikeProblem } from "./names.ts";
import { type Answer, refusal, refused } from "./replies.ts";
import type { Session } from "./session.ts";
import { addressKey, type AddressThrottle } from "./throttle.ts";

/** An answer, and whether the session ends after it (a lockout). */
export interface Outcome {
  answer: Answer;
  hangUp: boolean;
}

/** What a `pass` frame led to: an answer (and whether to hang up after it), or admission. */
export type PassOutcome = Outcome | "admit";

/** The login rules besides the lockout. */
export interface LoginOptions {
  allowRegister: boolean;
  /** Failed logins and wrong `passwd` old passwords per source address. */
  failures?: AddressThrottle;
  /** Accounts registered per source address. */
  registrations?: AddressThrottle;
  /**
   * Cluster mode: failed and good passwords are counted by proposals (`fail-login`, `login-ok`),
   * decided in log order on every node, so N failures across all nodes lock the account; the
   * guard is the replicated one, what `isLocked` reads.
   */
  cluster?: Cluster;
}

const BLOCKED = "Your account is blocked due to multiple login failures. Please try again later";
/** The reply when a source address is over its failed-login limit (its password is not checked). */
export const TOO_MANY_FAILURES =
  "Too many failed attempts from your address. Please try again later";
/** The reply when a source address is over its registration limit. */
export const TOO_MANY_REGISTRATIONS =
  "Too many new accounts from your address. Please try again later";

/** Logs sessions in, with the accounts and lockouts of the store. */
export class Login {
  readonly accounts: AccountStore;
  readonly guard: LoginGuard;

  constructor(
    store: Pick<Store, "accounts" | "guard">,
    readonly logger: Logger,
    readonly options: LoginOptions,
  ) {
    this.accounts = store.accounts;
    this.guard = store.guard;
  }

  /** `user`: an existing account asks for its password; an unknown one may register. */
  async user(session: Session, rawName: string): Promise<Answer> {
    if (session.stage === "active") return refusal("not-allowed", "You are already logged in.");
    const name = rawName.normalize("NFC");
    const problem = usernameProblem(name);
    const account = problem ? undefined : await this.accounts.find(name);
    if (account) {
      session.user = account.username;
      session.stage = "password";
      return { ok: true, lines: [], data: { need: "password" } };
    }
    if (this.options.allowRegister) {
      // New names only: accounts already on file keep working (lib/server/names.ts).
      const refused = problem ?? lookAlikeProblem(name);
      if (refused) return refusal("usage", `${refused}.`);
      session.user = name;
      session.stage = "register";
      return {
        ok: true,
        lines: ["This is a new user. Enter a password:"],
        data: { need: "new-password" },
      };
    }
    session.stage = "username";
    return refusal("unknown-user", "Username does not exist");
  }

  /** `pass`: checks the password (or registers), counting failures toward the lockout. */
  async pass(session: Session, password: string, udpPort: number): Promise<PassOutcome> {
    const answer = (a: Answer, hangUp = false) => ({ answer: a, hangUp });
    if (session.stage !== "password" && session.stage !== "register") {
      return answer(refusal("not-allowed", "Send a username first."));
    }
    if (!Number.isInteger(udpPort) || udpPort < 0 || udpPort > 65535) {
      return answer(refusal("usage", `Invalid UDP port: ${udpPort}`));
    }
    const user = session.user;
    const from = session.remote.hostname;
    if (session.stage === "register") {
      const problem = passwordProblem(password);
      if (problem) return answer(refusal("usage", `${problem}.`));
      const { registrations } = this.options;
      if (registrations && !registrations.take(from)) {
        this.#report(registrations, from, "registrations", "new accounts per hour");
        return answer(refusal("throttled", TOO_MANY_REGISTRATIONS));
      }
      try {
        await this.accounts.register(user, password);
      } catch (error) {
        registrations?.refund(from);
        if (error instanceof ServerBusyError) return answer(refusal("busy", error.message));
        if (!(error instanceof CommandError)) throw error;
        session.stage = "username";
        if (error instanceof UnavailableError) return answer(refused(error));
        return answer(refusal("unknown-user", `${error.message}.`));
      }
      this.logger.info(`New account created: ${user}`);
      return "admit";
    }
    if (this.guard.isLocked(user)) return answer(refusal("blocked", BLOCKED), true);
    const throttled = this.#overFailures(from);
    if (throttled) return answer(throttled);
    let good: boolean;
    try {
      good = await this.accounts.check(user, password);
    } catch (error) {
      if (!(error instanceof ServerBusyError)) throw error;
      // Refused before any check: it counts for nothing, anywhere.
      this.options.failures?.refund(from);
      return answer(refusal("busy", error.message));
    }
    if (good) this.options.failures?.refund(from);
    // The connection went away meanwhile: the attempt counts for nothing, and nothing is sent.
    if (session.ending) return answer(refusal("failed", "Connection closed."), true);
    // The lockout may have started while the password was being checked.
    if (this.guard.isLocked(user)) return answer(refusal("blocked", BLOCKED), true);
    if (!good) {
      const counted = await this.#counted(() => this.#recordFailure(user));
      if (typeof counted !== "string") return answer(counted);
      if (counted === "blocked") return answer(refusal("blocked", BLOCKED), true);
      if (counted === "locked") {
        this.logger.info(`${user} blocked after ${this.guard.maxFailures} failed login(s)`);
        return answer(
          refusal(
            "locked",
            "Invalid Password. Your account has been blocked. Please try again later",
          ),
          true,
        );
      }
      return answer(refusal("bad-password", "Invalid Password. Please try again"));
    }
    const reset = await this.#counted(() => this.#recordSuccess(user));
    if (typeof reset !== "string") return answer(reset);
    // Another node's lockout, decided before this login in the cluster's log.
    if (reset === "locked") return answer(refusal("blocked", BLOCKED), true);
    return "admit";
  }

  /**
   * `passwd`: a logged-in user changes their password, giving the old one. A wrong old password
   * counts as a failed login, for the account and for the source address; when it locks the
   * account the session ends (`hangUp`). While the account is locked, passwd is refused.
   */
  async passwd(session: Session, old: string, fresh: string): Promise<Outcome> {
    const answer = (a: Answer, hangUp = false) => ({ answer: a, hangUp });
    const problem = passwordProblem(fresh);
    if (problem) return answer(refusal("usage", `${problem}.`));
    const user = session.user;
    const from = session.remote.hostname;
    if (this.guard.isLocked(user)) return answer(refusal("blocked", BLOCKED));
    const throttled = this.#overFailures(from);
    if (throttled) return answer(throttled);
    try {
      await this.accounts.changePassword(user, old, fresh);
    } catch (error) {
      if (error instanceof WrongPasswordError) {
        if (session.ending) return answer(refusal("failed", "Connection closed."), true);
        const counted = await this.#counted(() => this.#recordFailure(user));
        if (typeof counted !== "string") return answer(counted);
        if (counted === "blocked") return answer(refusal("blocked", BLOCKED));
        if (counted === "locked") {
          this.logger.info(`${user} blocked after ${this.guard.maxFailures} failed login(s)`);
          return answer(
            refusal(
              "locked",
              "Old password is incorrect. Your account has been blocked. Please try again later",
            ),
            true,
          );
        }
        return answer(refused(error));
      }
      // Busy, or the file could not be written: the old password was not found wrong.
      this.options.failures?.refund(from);
      if (error instanceof ServerBusyError) return answer(refusal("busy", error.message));
      if (!(error instanceof CommandError)) throw error;
      return answer(refused(error));
    }
    this.options.failures?.refund(from);
    // The password is changed already: a reset the cluster could not take is only logged.
    const reset = await this.#counted(() => this.#recordSuccess(user));
    if (typeof reset !== "string") {
      this.logger.warn(`Could not reset ${user}'s failed logins: ${reset.lines.join(" ")}`);
    }
    this.logger.info(`${user} changed their password`);
    return answer({ ok: true, lines: ["Password changed."] });
  }

  /**
   * Counts a wrong password for `user`: through the cluster in cluster mode, else the guard.
   * "blocked" (not counted) when the cluster decided a lockout first.
   */
  async #recordFailure(user: string): Promise<FailureOutcome | "blocked"> {
    const { cluster } = this.options;
    if (!cluster) return await this.guard.recordFailure(user);
    const at = this.guard.clock.now();
    return (await accepted(cluster, { t: "fail-login", user, at })).result;
  }

  /**
   * Starts `user`'s failure count again: through the cluster in cluster mode, else the guard.
   * "locked" when the cluster decided a lockout first (this node had not applied it yet).
   */
  async #recordSuccess(user: string): Promise<"reset" | "locked"> {
    const { cluster } = this.options;
    if (!cluster) {
      await this.guard.recordSuccess(user);
      return "reset";
    }
    const at = this.guard.clock.now();
    return (await accepted(cluster, { t: "login-ok", user, at })).locked ? "locked" : "reset";
  }

  /**
   * What counting came to, or the refusal to send when it could not be done (the cluster's log
   * unreachable: `Service unavailable, try again`).
   */
  async #counted<T extends string>(count: () => Promise<T>): Promise<T | Answer> {
    try {
      return await count();
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      return refused(error);
    }
  }

  /**
   * Takes one failure from the source address's budget before a password is checked (it is given
   * back if the password is right); the refusal to send when the address has none left.
   */
  #overFailures(from: string): Answer | undefined {
    const { failures } = this.options;
    if (!failures || failures.take(from)) return undefined;
    this.#report(failures, from, "logins", "failed attempts per minute");
    return refusal("throttled", TOO_MANY_FAILURES);
  }

  /** Logs a refusal by address once per window, however many follow. */
  #report(throttle: AddressThrottle, from: string, what: string, rate: string): void {
    if (!throttle.shouldReport(from)) return;
    this.logger.warn(
      `Refusing ${what} from ${addressKey(from)} for now: over ${throttle.rule.limit} ${rate}`,
    );
  }
}
