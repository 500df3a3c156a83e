/**
 * What a client needs from a door to the server: one method per RPC, taking and returning the
 * plain values of model.ts and throwing the classes of errors.ts. `GrpcBackend` (grpc.ts) goes
 * through the generated stubs and connect-node; `RestBackend` (rest_backend.ts) through Envoy's
 * REST with `fetch`. The shared behaviour (tokens, retries, resuming watches, following
 * operations) lives once, in client_base.ts. Types only.
 */

import type { Account, Challenge, Event, JsonObject, Operation, Page, Session, Tool } from "./model.js";

/** Per call: the bearer token (none for login), a time limit and the caller's abort signal. */
export interface CallOptions {
  readonly token?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal | undefined;
}

export interface ListRequest {
  readonly filter: string;
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface ListEventsRequest extends ListRequest {
  /** Admins: every account's events (and the nodes'). */
  readonly allUsers: boolean;
}

export interface WatchEventsRequest {
  readonly filter: string;
  /** The name of the last event the caller has ("": from now on). */
  readonly after: string;
  readonly allUsers: boolean;
}

export interface CallToolRequest {
  readonly name: string;
  readonly arguments: JsonObject;
  readonly requestId: string;
  readonly validateOnly: boolean;
  /** Wait up to this long for a long-running call's operation to finish (0: answer at once). */
  readonly waitMs: number;
}

export interface Backend {
  /** Where calls go, for messages (`127.0.0.1:50051`, `http://127.0.0.1:8080`). */
  readonly target: string;

  createChallenge(publicKey: Uint8Array, options: CallOptions): Promise<Challenge>;
  login(challengeId: string, publicKey: Uint8Array, signature: Uint8Array, options: CallOptions): Promise<Session>;
  refreshToken(refreshToken: string, options: CallOptions): Promise<Session>;
  revokeToken(refreshToken: string, options: CallOptions): Promise<void>;
  getCurrentAccount(options: CallOptions): Promise<Account>;

  listTools(request: ListRequest, options: CallOptions): Promise<Page<Tool>>;
  getTool(name: string, options: CallOptions): Promise<Tool>;
  callTool(request: CallToolRequest, options: CallOptions): Promise<Operation>;

  getOperation(name: string, options: CallOptions): Promise<Operation>;
  listOperations(request: ListRequest, options: CallOptions): Promise<Page<Operation>>;
  cancelOperation(name: string, options: CallOptions): Promise<Operation>;
  deleteOperation(name: string, options: CallOptions): Promise<void>;
  waitOperation(name: string, timeoutSeconds: number, options: CallOptions): Promise<Operation>;
  /** One WatchOperation stream; it may end or throw before the operation is done. */
  watchOperation(name: string, afterSequence: number, options: CallOptions): AsyncIterable<Operation>;

  /** ApproveOperation / DenyOperation: an operation held for approval (approvers). */
  approveOperation(name: string, comment: string, options: CallOptions): Promise<Operation>;
  denyOperation(name: string, comment: string, options: CallOptions): Promise<Operation>;

  listEvents(request: ListEventsRequest, options: CallOptions): Promise<Page<Event>>;
  /** One WatchEvents stream; it may end or throw at any time (the client resumes it). */
  watchEvents(request: WatchEventsRequest, options: CallOptions): AsyncIterable<Event>;

  /** Policies in their proto JSON form (`allow_tools`, `max_instances`, ...). */
  getPolicy(name: string, options: CallOptions): Promise<JsonObject>;
  updatePolicy(policy: JsonObject, updateMask: readonly string[], options: CallOptions): Promise<JsonObject>;
  getEffectivePolicy(options: CallOptions): Promise<JsonObject>;

  /** Release connections. */
  close(): Promise<void>;
}
