/**
 * What every client does, whichever door it uses (`Client` over gRPC, `RestClient` over
 * Envoy's REST): tokens (log in on first use, refresh before expiry, renew once on
 * UNAUTHENTICATED and repeat the call), a deadline on every unary call, UNAVAILABLE retried
 * with backoff for calls that are safe to repeat, watches that resume after the last sequence
 * they saw when the stream drops, and `callAndWait`. No runtime dependency.
 */

import type { KeyObject } from "node:crypto";

import type { Backend, CallOptions } from "./backend.js";
import { Cancelled, DeadlineExceeded, FmcpError, Unauthenticated, Unavailable } from "./errors.js";
import { keyFromEnv, loadKey, loadKeyFile } from "./keys.js";
import { operationError, type Account, type JsonObject, type Operation, type Session, type Tool } from "./model.js";
import { EventsApi, PoliciesApi } from "./events_policies.js";
import { TokenSource } from "./tokens.js";

export const DEFAULT_DEADLINE_MS = 30_000;
/** One WaitOperation asks for at most this long (the server caps it at FMCP_WAIT_MAX, 60 s). */
const WAIT_SLICE_MS = 50_000;

export interface RetryPolicy {
  /** Tries of one call (or renewed watch streams in a row) before UNAVAILABLE is raised. */
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, initialDelayMs: 100, maxDelayMs: 2_000 };

export interface ClientOptions {
  /** An Ed25519 private key (a `KeyObject` or PEM text). */
  readonly key?: KeyObject | string | undefined;
  /** A PEM file as `fmcp keygen` writes it. */
  readonly keyFile?: string | undefined;
  /** A fixed access token instead of a key (not renewed). Without key, keyFile and token,
   * `FMCP_KEY` or `FMCP_KEY_FILE` is used. */
  readonly token?: string | undefined;
  /** A session to start from (renewed with its refresh token, or the key). */
  readonly session?: Session | undefined;
  /** Each unary call's time limit (30 s). */
  readonly deadlineMs?: number | undefined;
  readonly retry?: Partial<RetryPolicy> | undefined;
  /** Refresh the access token this long before it expires (60 s). */
  readonly refreshMarginSeconds?: number | undefined;
  /** Milliseconds since the epoch, for the token's expiry (tests move it). */
  readonly clock?: (() => number) | undefined;
}

export type ProgressCallback = (operation: Operation) => unknown;

/** callAndWait without a progress callback: one call waits up to this (the server's
 * FMCP_WAIT_MAX is 60 s by default), then the operation is followed. */
const LONGEST_WAIT_MS = 55_000;
const WAIT_SLACK_MS = 10_000;

export interface FollowOptions {
  /** Called with every snapshot the watch delivers (may return a promise, which is awaited). */
  readonly onProgress?: ProgressCallback | undefined;
  /** Aborting stops the wait with `Cancelled`, and cancels the operation unless
   * `cancelOnAbort` is false. */
  readonly signal?: AbortSignal | undefined;
  readonly cancelOnAbort?: boolean | undefined;
  /** Bounds the whole wait: `DeadlineExceeded`, the operation keeps running. */
  readonly timeoutMs?: number | undefined;
}

export interface CallAndWaitOptions extends FollowOptions {
  /** Idempotency key (a UUID is made up when absent, so the call can be retried). */
  readonly requestId?: string | undefined;
}

export interface WatchOptions {
  /** Resume after this change instead of starting with the current snapshot. */
  readonly afterSequence?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

interface UnaryOptions {
  readonly idempotent: boolean;
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly authenticated?: boolean | undefined;
}

export function toolResource(name: string): string {
  return name.startsWith("tools/") ? name : `tools/${name}`;
}

export function operationResource(name: string): string {
  return name.startsWith("operations/") ? name : `operations/${name}`;
}

export class BaseClient {
  readonly tools: ToolsApi;
  readonly operations: OperationsApi;
  readonly events: EventsApi;
  readonly policies: PoliciesApi;
  readonly deadlineMs: number;
  readonly retry: RetryPolicy;
  readonly tokenSource: TokenSource;

  protected constructor(
    readonly backend: Backend,
    options: ClientOptions,
  ) {
    let key: KeyObject | undefined;
    if (options.key !== undefined) {
      key = loadKey(options.key);
    } else if (options.keyFile !== undefined) {
      key = loadKeyFile(options.keyFile);
    } else if (options.token === undefined) {
      key = keyFromEnv();
    }
    if (key === undefined && options.token === undefined) {
      throw new TypeError("no credentials: give key, keyFile or token (or set FMCP_KEY_FILE)");
    }
    this.tokenSource = new TokenSource({
      key,
      token: options.token,
      session: options.session,
      clock: options.clock,
      refreshMarginSeconds: options.refreshMarginSeconds,
    });
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.tools = new ToolsApi(this);
    this.operations = new OperationsApi(this);
    this.events = new EventsApi(this);
    this.policies = new PoliciesApi(this);
  }

  get target(): string {
    return this.backend.target;
  }

  async close(): Promise<void> {
    await this.backend.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Log in with the key now (whatever session there is); the account. */
  async login(): Promise<Account> {
    return (await this.tokenSource.login(this.backend)).account;
  }

  async whoami(): Promise<Account> {
    return this.unary((call) => this.backend.getCurrentAccount(call), { idempotent: true });
  }

  /** A valid access token (for another client, curl or grpcurl). */
  async accessToken(): Promise<string> {
    return this.tokenSource.token(this.backend);
  }

  /** Revoke the session's refresh-token family on the server and forget it here. */
  async logout(): Promise<void> {
    if (this.tokenSource.session !== undefined) {
      await this.tokenSource.token(this.backend); // refreshed first if due: revoke the current
      const refresh = this.tokenSource.session.refreshToken;
      await this.unary((call) => this.backend.revokeToken(refresh, call), { idempotent: true });
    }
    this.tokenSource.forget();
  }

  /** Call a tool and follow its operation to the end; the tool's output. A failed operation
   * throws the class of its error code with `operation` set (`Cancelled` when cancelled). */
  async callAndWait(tool: string, args: JsonObject = {}, options: CallAndWaitOptions = {}): Promise<JsonObject> {
    // Without a progress callback: one RPC when the work is done within the call's wait. With
    // one, no wait: the callback gets every change from the first.
    const started = Date.now();
    let waitMs = options.onProgress === undefined ? LONGEST_WAIT_MS : 0;
    if (options.timeoutMs !== undefined) {
      waitMs = Math.min(waitMs, options.timeoutMs);
    }
    const operation = await this.tools.call(tool, args, {
      requestId: options.requestId ?? crypto.randomUUID(),
      signal: options.signal,
      waitMs,
    });
    const timeoutMs = options.timeoutMs === undefined ? undefined : Math.max(options.timeoutMs - (Date.now() - started), 0);
    return resultOf(await this.follow(operation, { ...options, timeoutMs }));
  }

  /** Watch `operation` until it is done: `onProgress` gets `operation` itself, then every
   * change after it, in order (the watch resumes after its sequence, so none is missed). */
  async follow(operation: Operation, options: FollowOptions = {}): Promise<Operation> {
    await options.onProgress?.(operation);
    if (operation.done) {
      return operation;
    }
    const stop = new AbortController();
    const signals = [stop.signal];
    if (options.signal !== undefined) {
      signals.push(options.signal);
    }
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => stop.abort(new DeadlineExceeded("timed out")), options.timeoutMs);
    let last = operation;
    try {
      const watch = this.operations.watch(operation.name, {
        afterSequence: operation.metadata.sequence,
        signal: AbortSignal.any(signals),
      });
      for await (const snapshot of watch) {
        last = snapshot;
        await options.onProgress?.(snapshot);
      }
      return last;
    } catch (error) {
      if (stop.signal.aborted) {
        throw new DeadlineExceeded(`${operation.name} was not done after ${options.timeoutMs} ms; it keeps running`, {
          operation: operation.name,
        });
      }
      if (options.signal?.aborted) {
        const cancel = options.cancelOnAbort ?? true;
        if (cancel) {
          await this.operations.cancel(operation.name);
        }
        throw new Cancelled(
          `the wait for ${operation.name} was aborted; ${cancel ? "the operation was cancelled" : "it keeps running"}`,
          { operation: operation.name, cause: options.signal.reason },
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One unary call with a deadline, the token renewed once, and retries when allowed. */
  async unary<T>(call: (options: CallOptions) => Promise<T>, options: UnaryOptions): Promise<T> {
    let attempt = 0;
    let renewed = false;
    for (;;) {
      attempt += 1;
      let sent = false;
      let token = "";
      try {
        if (options.authenticated ?? true) {
          token = await this.tokenSource.token(this.backend);
        }
        sent = true;
        return await call({ token, timeoutMs: options.timeoutMs ?? this.deadlineMs, signal: options.signal });
      } catch (error) {
        if (error instanceof Unauthenticated && sent && token && !renewed && this.tokenSource.canRenew) {
          renewed = true;
          attempt -= 1;
          await this.tokenSource.invalidate(this.backend, token);
          continue;
        }
        const retryable = options.idempotent || !sent; // logging in and refreshing are safe
        if (error instanceof Unavailable && retryable && attempt < this.retry.maxAttempts && !options.signal?.aborted) {
          await sleep(this.delayMs(attempt, error.retryDelaySeconds), options.signal);
          continue;
        }
        throw error;
      }
    }
  }

  /** WatchOperation, resumed after the last sequence seen when the stream drops or ends
   * before the operation is done: every change once, in order. */
  async *watchOperation(name: string, options: WatchOptions = {}): AsyncGenerator<Operation, void, undefined> {
    let last = options.afterSequence ?? 0;
    const stream = this.resumingStream(
      (token) => this.backend.watchOperation(name, last, { token, signal: options.signal }),
      `the watch of ${name} ended before the operation was done`,
      options.signal,
    );
    for await (const operation of stream) {
      if (last > 0 && operation.metadata.sequence <= last) {
        continue; // already delivered before the stream was resumed
      }
      last = operation.metadata.sequence;
      yield operation;
      if (operation.done) {
        return;
      }
    }
  }

  /** A server stream opened again (from where the caller got to: `open` reads its cursor)
   * when it drops or ends: with a renewed token once when the token expired, after a backoff
   * when the server is unavailable (up to the retry policy's attempts in a row). */
  async *resumingStream<T>(
    open: (token: string) => AsyncIterable<T>,
    endedEarly: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<T, void, undefined> {
    let failures = 0;
    let renewed = false;
    for (;;) {
      let token = "";
      let error: unknown;
      try {
        token = await this.tokenSource.token(this.backend);
        for await (const item of open(token)) {
          failures = 0;
          yield item;
        }
        error = new Unavailable(endedEarly);
      } catch (caught) {
        error = caught;
      }
      if (signal?.aborted) {
        throw error;
      }
      if (error instanceof Unauthenticated && token && !renewed && this.tokenSource.canRenew) {
        renewed = true;
        await this.tokenSource.invalidate(this.backend, token);
        continue;
      }
      failures += 1;
      if (error instanceof Unavailable && failures < this.retry.maxAttempts) {
        await sleep(this.delayMs(failures, error.retryDelaySeconds), signal);
        continue;
      }
      throw error;
    }
  }

  private delayMs(attempt: number, serverHintSeconds: number | undefined): number {
    if (serverHintSeconds !== undefined) {
      return serverHintSeconds * 1000;
    }
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.initialDelayMs * 2 ** (attempt - 1));
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }
}

export interface CallToolOptions {
  /** Idempotency key: the same caller and id get the first call's operation (and the call
   * is retried when the server is unavailable). */
  readonly requestId?: string | undefined;
  /** Only check the arguments; start nothing. */
  readonly validateOnly?: boolean | undefined;
  /** Wait up to this long (the server caps it at its FMCP_WAIT_MAX) for a long-running
   * call to finish: the done operation when it did, else the pending one (one RPC). */
  readonly waitMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** `client.tools`: discover and call tools. */
export class ToolsApi {
  constructor(private readonly client: BaseClient) {}

  /** Every tool (all pages) matching the filter (`category = "vm"`). */
  async list(filter = ""): Promise<Tool[]> {
    const tools: Tool[] = [];
    let pageToken = "";
    do {
      const page = await this.client.unary(
        (call) => this.client.backend.listTools({ filter, pageSize: 1000, pageToken }, call),
        { idempotent: true },
      );
      tools.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return tools;
  }

  async get(name: string): Promise<Tool> {
    return this.client.unary((call) => this.client.backend.getTool(toolResource(name), call), { idempotent: true });
  }

  /** Call a tool: a quick tool's operation comes back done, a long-running one PENDING. */
  async call(name: string, args: JsonObject = {}, options: CallToolOptions = {}): Promise<Operation> {
    const request = {
      name: toolResource(name),
      arguments: args,
      requestId: options.requestId ?? "",
      validateOnly: options.validateOnly ?? false,
      waitMs: options.waitMs ?? 0,
    };
    return this.client.unary((call) => this.client.backend.callTool(request, call), {
      idempotent: Boolean(options.requestId),
      signal: options.signal,
      timeoutMs: Math.max(this.client.deadlineMs, request.waitMs + WAIT_SLACK_MS),
    });
  }
}

export interface ListOperationsOptions {
  readonly pageSize?: number | undefined;
  /** Stop after this many. */
  readonly limit?: number | undefined;
}

/** `client.operations`: follow and manage the operations tool calls start. */
export class OperationsApi {
  constructor(private readonly client: BaseClient) {}

  async get(name: string): Promise<Operation> {
    return this.client.unary((call) => this.client.backend.getOperation(operationResource(name), call), {
      idempotent: true,
    });
  }

  /** Your operations, newest first, fetching pages as you iterate. */
  async *list(filter = "", options: ListOperationsOptions = {}): AsyncGenerator<Operation, void, undefined> {
    let pageToken = "";
    let seen = 0;
    do {
      const request = { filter, pageSize: options.pageSize ?? 0, pageToken };
      const page = await this.client.unary((call) => this.client.backend.listOperations(request, call), {
        idempotent: true,
      });
      for (const operation of page.items) {
        if (options.limit !== undefined && seen >= options.limit) {
          return;
        }
        seen += 1;
        yield operation;
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Ask the operation to stop; it ends CANCELLED once its work has stopped. */
  async cancel(name: string): Promise<Operation> {
    return this.client.unary((call) => this.client.backend.cancelOperation(operationResource(name), call), {
      idempotent: true,
    });
  }

  /** Forget a finished operation (it does not stop the work: cancel does). */
  async delete(name: string): Promise<void> {
    await this.client.unary((call) => this.client.backend.deleteOperation(operationResource(name), call), {
      idempotent: true,
    });
  }

  /** The operation once done, or as it is after `timeoutMs` (check `done`); without a
   * timeout, as long as it takes. */
  async wait(name: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Operation> {
    const resource = operationResource(name);
    const end = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (;;) {
      const left = Math.max(0, end === undefined ? WAIT_SLICE_MS : Math.min(WAIT_SLICE_MS, end - Date.now()));
      const operation = await this.client.unary(
        (call) => this.client.backend.waitOperation(resource, left / 1000, call),
        { idempotent: true, timeoutMs: left + this.client.deadlineMs, signal: options.signal },
      );
      if (operation.done || (end !== undefined && Date.now() >= end)) {
        return operation;
      }
    }
  }

  /** Let an operation held for approval run (approvers; never one's own call). */
  async approve(name: string, comment = ""): Promise<Operation> {
    const resource = operationResource(name);
    return this.client.unary((call) => this.client.backend.approveOperation(resource, comment, call), {
      idempotent: true,
    });
  }

  /** Refuse an operation held for approval: it fails with PERMISSION_DENIED and the
   * comment, which the caller reads. */
  async deny(name: string, comment: string): Promise<Operation> {
    const resource = operationResource(name);
    return this.client.unary((call) => this.client.backend.denyOperation(resource, comment, call), {
      idempotent: true,
    });
  }

  /** The operation now, then once per change (progress, stage, new log lines), ending with
   * the snapshot that is done; resumes by itself when the stream drops. */
  watch(name: string, options: WatchOptions = {}): AsyncGenerator<Operation, void, undefined> {
    return this.client.watchOperation(operationResource(name), options);
  }
}

/** The output of a done operation, or its error thrown as the client's error class. */
export function resultOf(operation: Operation): JsonObject {
  const error = operationError(operation);
  if (error !== undefined) {
    throw error;
  }
  if (!operation.done) {
    throw new FmcpError(`${operation.name} is not done`, { operation: operation.name });
  }
  return operation.result ?? {};
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
