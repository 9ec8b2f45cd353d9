/**
 * The login state machine: `user` then `pass` (or a new password when registering), the lockout
 * after repeated failures, and `passwd` for a logged-in user. It answers each frame; a login that
 * succeeds is handed to the roster by the server core.
 */
import { CommandError } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { AccountStore } from "./accounts.ts";
import { passwordProblem, usernameProblem } from "./credentials.ts";
import type { LoginGuard } from "./lockout.ts";
import { type Answer, refusal } from "./replies.ts";
import type { Session } from "./session.ts";

/** What a `pass` frame led to: an answer (and whether to hang up after it), or admission. */
export type PassOutcome = { answer: Answer; hangUp: boolean } | "admit";

const BLOCKED = "Your account is blocked due to multiple login failures. Please try again later";

/** Logs sessions in. */
export class Login {
  constructor(
    readonly accounts: AccountStore,
    readonly guard: LoginGuard,
    readonly logger: Logger,
    readonly options: { allowRegister: boolean },
  ) {}

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
      if (problem) return refusal("usage", `${problem}.`);
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
    if (session.stage === "register") {
      const problem = passwordProblem(password);
      if (problem) return answer(refusal("usage", `${problem}.`));
      try {
        await this.accounts.register(user, password);
      } catch (error) {
        if (!(error instanceof CommandError)) throw error;
        session.stage = "username";
        return answer(refusal("unknown-user", `${error.message}.`));
      }
      this.logger.info(`New account created: ${user}`);
      return "admit";
    }
    if (this.guard.isLocked(user)) return answer(refusal("blocked", BLOCKED), true);
    const good = await this.accounts.check(user, password);
    // The connection went away meanwhile: the attempt counts for nothing, and nothing is sent.
    if (session.ending) return answer(refusal("failed", "Connection closed."), true);
    // The lockout may have started while the password was being checked.
    if (this.guard.isLocked(user)) return answer(refusal("blocked", BLOCKED), true);
    if (!good) {
      if (this.guard.recordFailure(user) === "locked") {
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
    this.guard.recordSuccess(user);
    return "admit";
  }

  /** `passwd`: a logged-in user changes their password, giving the old one. */
  async passwd(session: Session, old: string, fresh: string): Promise<Answer> {
    const problem = passwordProblem(fresh);
    if (problem) return refusal("usage", `${problem}.`);
    try {
      await this.accounts.changePassword(session.user, old, fresh);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      return refusal("failed", error.message);
    }
    this.logger.info(`${session.user} changed their password`);
    return { ok: true, lines: ["Password changed."] };
  }
}
