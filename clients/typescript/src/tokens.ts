/**
 * Where access tokens come from: an Ed25519 key (logged in on first use, refreshed before the
 * access token expires, logged in again when the refresh token no longer works) or a fixed
 * token. Renewals are serialized: calls that need a token at once share one renewal.
 * No runtime dependency.
 */

import type { KeyObject } from "node:crypto";

import type { Backend } from "./backend.js";
import { Unauthenticated } from "./errors.js";
import { publicKeyBytes, signMessage } from "./keys.js";
import type { Session } from "./model.js";

/** Refresh this long before the access token expires (tokens live at most 15 minutes). */
export const REFRESH_MARGIN_SECONDS = 60;
const AUTH_TIMEOUT_MS = 30_000;

export interface TokenSourceOptions {
  readonly key?: KeyObject | undefined;
  readonly token?: string | undefined;
  /** A session to start from (another process's, say); renewed like one of ours. */
  readonly session?: Session | undefined;
  /** Milliseconds since the epoch; tests move it. */
  readonly clock?: (() => number) | undefined;
  readonly refreshMarginSeconds?: number | undefined;
}

export class TokenSource {
  private readonly key: KeyObject | undefined;
  private readonly fixedToken: string | undefined;
  private readonly clock: () => number;
  private readonly marginMs: number;
  private current: Session | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: TokenSourceOptions) {
    if (options.key === undefined && options.token === undefined) {
      throw new TypeError("give an Ed25519 key or an access token");
    }
    this.key = options.key;
    this.fixedToken = options.token;
    this.current = options.session;
    this.clock = options.clock ?? Date.now;
    this.marginMs = (options.refreshMarginSeconds ?? REFRESH_MARGIN_SECONDS) * 1000;
  }

  /** The key-based session last used (undefined before the first call, or with a token). */
  get session(): Session | undefined {
    return this.current;
  }

  get canRenew(): boolean {
    return this.key !== undefined;
  }

  /** A valid access token: the session's, renewed first when it is due. */
  async token(backend: Backend): Promise<string> {
    if (this.key === undefined) {
      return this.fixedToken ?? "";
    }
    return this.serialized(async () => {
      let session = this.current;
      if (session === undefined || !this.fresh(session)) {
        session = await this.renew(backend, session);
      }
      return session.accessToken;
    });
  }

  /** The server refused `refused`: renew once (refresh, else log in with the key), unless
   * another call renewed it meanwhile. */
  async invalidate(backend: Backend, refused: string): Promise<void> {
    if (this.key === undefined) {
      return;
    }
    await this.serialized(async () => {
      if (this.current !== undefined && this.current.accessToken !== refused) {
        return;
      }
      await this.renew(backend, this.current);
    });
  }

  /** A new login with the key, whatever session there is. */
  async login(backend: Backend): Promise<Session> {
    return this.serialized(() => this.logIn(backend));
  }

  forget(): void {
    this.current = undefined;
  }

  private fresh(session: Session): boolean {
    return session.expireTime.getTime() - this.marginMs > this.clock();
  }

  private async renew(backend: Backend, session: Session | undefined): Promise<Session> {
    if (session !== undefined && session.refreshToken) {
      try {
        this.current = await backend.refreshToken(session.refreshToken, { timeoutMs: AUTH_TIMEOUT_MS });
        return this.current;
      } catch (error) {
        if (!(error instanceof Unauthenticated)) {
          throw error;
        }
      }
    }
    return this.logIn(backend);
  }

  private async logIn(backend: Backend): Promise<Session> {
    if (this.key === undefined) {
      throw new Unauthenticated("logging in needs an Ed25519 key, not a token", { reason: "NO_KEY" });
    }
    const publicKey = publicKeyBytes(this.key);
    const options = { timeoutMs: AUTH_TIMEOUT_MS };
    const challenge = await backend.createChallenge(publicKey, options);
    const signature = signMessage(this.key, challenge.message);
    this.current = await backend.login(challenge.challengeId, publicKey, signature, options);
    return this.current;
  }

  /** Runs `work` after every renewal already queued (one at a time). */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
