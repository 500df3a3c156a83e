/**
 * `Client`: the API over gRPC, through the code protoc-gen-es generated from proto/
 * (generated/ts) and connect-node's gRPC transport (HTTP/2, straight to the server or through
 * Envoy, which passes gRPC through on the same port).
 *
 *     const client = new Client({ target: "127.0.0.1:50051", keyFile: "~/.config/fmcp/key.pem" });
 *     const output = await client.callAndWait("test.sleep", { steps: 3 }, { onProgress: console.log });
 */

import { type DescMessage, fromJson, type JsonValue as ProtoJson, type MessageShape, toJson } from "@bufbuild/protobuf";
import { anyUnpack, durationFromMs, type Any, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient, type CallOptions as ConnectCallOptions, type Client as ConnectClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import {
  AuthService,
  type Account as AccountMessage,
  type Session as SessionMessage,
} from "../../../generated/ts/formation/mcp/v1/auth_pb.js";
import {
  Event_Severity,
  EventsService,
  type Event as EventMessage,
} from "../../../generated/ts/formation/mcp/v1/events_pb.js";
import {
  LogLine_Stream,
  OperationMetadata_State,
  OperationMetadataSchema,
  OperationsService,
  ToolResultSchema,
} from "../../../generated/ts/formation/mcp/v1/operations_pb.js";
import {
  EffectivePolicySchema,
  PoliciesService,
  PolicySchema,
} from "../../../generated/ts/formation/mcp/v1/policies_pb.js";
import { ToolsService, type Tool as ToolMessage } from "../../../generated/ts/formation/mcp/v1/tools_pb.js";
import type { Operation as OperationMessage } from "../../../generated/ts/google/longrunning/operations_pb.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../../../generated/ts/google/rpc/error_details_pb.js";
import type { Status } from "../../../generated/ts/google/rpc/status_pb.js";
import type {
  Backend,
  CallOptions,
  CallToolRequest,
  ListEventsRequest,
  ListRequest,
  WatchEventsRequest,
} from "./backend.js";
import { BaseClient, type ClientOptions } from "./client_base.js";
import {
  Cancelled,
  errorFromStatus,
  type FieldViolation,
  FmcpError,
  localStatus,
  type StatusInfo,
  Unavailable,
} from "./errors.js";
import {
  emptyMetadata,
  type Account,
  type Challenge,
  type Event,
  type EventSeverity,
  type JsonObject,
  type LogStream,
  type Operation,
  type OperationMetadata,
  type OperationState,
  type Page,
  type Session,
  type Tool,
} from "./model.js";

export interface GrpcClientOptions extends ClientOptions {
  /** `host:port` (plaintext HTTP/2) or a URL (`http://host:port`, `https://host`). */
  readonly target: string;
}

/** The API over gRPC. Close it (`await client.close()`) to release the connection. */
export class Client extends BaseClient {
  constructor(options: GrpcClientOptions) {
    super(new GrpcBackend(options.target), options);
  }
}

/** `host:port` as the URL connect wants. */
export function baseUrl(target: string): string {
  return target.includes("://") ? target : `http://${target}`;
}

export class GrpcBackend implements Backend {
  private readonly sessions: Http2SessionManager;
  private readonly auth: ConnectClient<typeof AuthService>;
  private readonly toolsStub: ConnectClient<typeof ToolsService>;
  private readonly operationsStub: ConnectClient<typeof OperationsService>;
  private readonly eventsStub: ConnectClient<typeof EventsService>;
  private readonly policiesStub: ConnectClient<typeof PoliciesService>;

  constructor(readonly target: string) {
    const url = baseUrl(target);
    // Ping a connection that carries a watch, so a dead peer is noticed and the watch resumes.
    this.sessions = new Http2SessionManager(url, { pingIntervalMs: 30_000, pingTimeoutMs: 15_000 });
    const transport = createGrpcTransport({ baseUrl: url, sessionManager: this.sessions });
    this.auth = createClient(AuthService, transport);
    this.toolsStub = createClient(ToolsService, transport);
    this.operationsStub = createClient(OperationsService, transport);
    this.eventsStub = createClient(EventsService, transport);
    this.policiesStub = createClient(PoliciesService, transport);
  }

  async close(): Promise<void> {
    this.sessions.abort();
  }

  async createChallenge(publicKey: Uint8Array, options: CallOptions): Promise<Challenge> {
    const challenge = await this.unary(() => this.auth.createChallenge({ publicKey }, connectOptions(options)));
    return { challengeId: challenge.challengeId, message: challenge.message };
  }

  async login(challengeId: string, publicKey: Uint8Array, signature: Uint8Array, options: CallOptions): Promise<Session> {
    return session(await this.unary(() => this.auth.login({ challengeId, publicKey, signature }, connectOptions(options))));
  }

  async refreshToken(refreshToken: string, options: CallOptions): Promise<Session> {
    return session(await this.unary(() => this.auth.refreshToken({ refreshToken }, connectOptions(options))));
  }

  async revokeToken(refreshToken: string, options: CallOptions): Promise<void> {
    await this.unary(() => this.auth.revokeToken({ refreshToken }, connectOptions(options)));
  }

  async getCurrentAccount(options: CallOptions): Promise<Account> {
    return account(await this.unary(() => this.auth.getCurrentAccount({}, connectOptions(options))));
  }

  async listTools(request: ListRequest, options: CallOptions): Promise<Page<Tool>> {
    const page = await this.unary(() => this.toolsStub.listTools(request, connectOptions(options)));
    return { items: page.tools.map(tool), nextPageToken: page.nextPageToken };
  }

  async getTool(name: string, options: CallOptions): Promise<Tool> {
    return tool(await this.unary(() => this.toolsStub.getTool({ name }, connectOptions(options))));
  }

  async callTool(request: CallToolRequest, options: CallOptions): Promise<Operation> {
    const message = {
      name: request.name,
      arguments: request.arguments,
      requestId: request.requestId,
      validateOnly: request.validateOnly,
      ...(request.waitMs > 0 ? { wait: durationFromMs(request.waitMs) } : {}),
    };
    return operation(await this.unary(() => this.toolsStub.callTool(message, connectOptions(options))));
  }

  async getOperation(name: string, options: CallOptions): Promise<Operation> {
    return operation(await this.unary(() => this.operationsStub.getOperation({ name }, connectOptions(options))));
  }

  async listOperations(request: ListRequest, options: CallOptions): Promise<Page<Operation>> {
    const page = await this.unary(() => this.operationsStub.listOperations(request, connectOptions(options)));
    return { items: page.operations.map(operation), nextPageToken: page.nextPageToken };
  }

  async cancelOperation(name: string, options: CallOptions): Promise<Operation> {
    return operation(await this.unary(() => this.operationsStub.cancelOperation({ name }, connectOptions(options))));
  }

  async deleteOperation(name: string, options: CallOptions): Promise<void> {
    await this.unary(() => this.operationsStub.deleteOperation({ name }, connectOptions(options)));
  }

  async waitOperation(name: string, timeoutSeconds: number, options: CallOptions): Promise<Operation> {
    const timeout = durationFromMs(Math.round(timeoutSeconds * 1000));
    return operation(await this.unary(() => this.operationsStub.waitOperation({ name, timeout }, connectOptions(options))));
  }

  async *watchOperation(name: string, afterSequence: number, options: CallOptions): AsyncGenerator<Operation> {
    // Our own signal too: leaving the loop early (or an error) ends the stream on the server.
    const stop = new AbortController();
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([stop.signal, options.signal]);
    const stream = this.operationsStub.watchOperation(
      { name, afterSequence: BigInt(afterSequence) },
      { headers: bearer(options.token), signal },
    );
    try {
      for await (const message of stream) {
        yield operation(message);
      }
    } catch (error) {
      throw grpcError(error, options.signal);
    } finally {
      stop.abort();
    }
  }

  async approveOperation(name: string, comment: string, options: CallOptions): Promise<Operation> {
    const request = { name, comment };
    return operation(await this.unary(() => this.operationsStub.approveOperation(request, connectOptions(options))));
  }

  async denyOperation(name: string, comment: string, options: CallOptions): Promise<Operation> {
    const request = { name, comment };
    return operation(await this.unary(() => this.operationsStub.denyOperation(request, connectOptions(options))));
  }

  async listEvents(request: ListEventsRequest, options: CallOptions): Promise<Page<Event>> {
    const page = await this.unary(() => this.eventsStub.listEvents(request, connectOptions(options)));
    return { items: page.events.map(event), nextPageToken: page.nextPageToken };
  }

  async *watchEvents(request: WatchEventsRequest, options: CallOptions): AsyncGenerator<Event> {
    const stop = new AbortController();
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([stop.signal, options.signal]);
    const stream = this.eventsStub.watchEvents(request, { headers: bearer(options.token), signal });
    try {
      for await (const message of stream) {
        yield event(message);
      }
    } catch (error) {
      throw grpcError(error, options.signal);
    } finally {
      stop.abort();
    }
  }

  async getPolicy(name: string, options: CallOptions): Promise<JsonObject> {
    const policy = await this.unary(() => this.policiesStub.getPolicy({ name }, connectOptions(options)));
    return protoJson(toJson(PolicySchema, policy, JSON_OPTIONS));
  }

  async updatePolicy(policy: JsonObject, updateMask: readonly string[], options: CallOptions): Promise<JsonObject> {
    const request = { policy: fromJson(PolicySchema, policy), updateMask: { paths: [...updateMask] } };
    const updated = await this.unary(() => this.policiesStub.updatePolicy(request, connectOptions(options)));
    return protoJson(toJson(PolicySchema, updated, JSON_OPTIONS));
  }

  async getEffectivePolicy(options: CallOptions): Promise<JsonObject> {
    const effective = await this.unary(() => this.policiesStub.getEffectivePolicy({}, connectOptions(options)));
    return protoJson(toJson(EffectivePolicySchema, effective, JSON_OPTIONS));
  }

  private async unary<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw grpcError(error, undefined);
    }
  }
}

/** Proto JSON as Envoy's REST answers it: the protos' field names, empty fields included. */
const JSON_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

function protoJson(value: ProtoJson): JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
}

function connectOptions(options: CallOptions): ConnectCallOptions {
  const result: ConnectCallOptions = { headers: bearer(options.token) };
  if (options.timeoutMs !== undefined) {
    result.timeoutMs = options.timeoutMs;
  }
  if (options.signal !== undefined) {
    result.signal = options.signal;
  }
  return result;
}

function bearer(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** The client's error for whatever a call threw: the server's status with its details, or
 * UNAVAILABLE when the connection failed or broke (retried; a watch resumes). */
export function grpcError(error: unknown, signal: AbortSignal | undefined): FmcpError {
  if (error instanceof FmcpError) {
    return error;
  }
  const connectError = ConnectError.from(error);
  if (signal?.aborted) {
    return new Cancelled("the call was aborted", { cause: signal.reason });
  }
  if (connectionFailed(connectError)) {
    return new Unavailable(`the connection failed: ${connectError.rawMessage}`, { cause: error });
  }
  return errorFromStatus(statusOfError(connectError), undefined, error);
}

/** A failure of the connection rather than an answer: a Node.js network or HTTP/2 error
 * under it, or a stream reset, with no gRPC status from the server. */
function connectionFailed(error: ConnectError): boolean {
  if (error.metadata.get("grpc-status") !== null || error.details.length > 0) {
    return false;
  }
  for (let cause: unknown = error.cause; cause instanceof Error; cause = cause.cause) {
    if ("code" in cause && typeof cause.code === "string") {
      return true; // ECONNRESET, ECONNREFUSED, EPIPE, ERR_HTTP2_..., ...
    }
  }
  return /http\/2 stream closed|premature close|socket hang up|stream reset/i.test(error.rawMessage);
}

function statusOfError(error: ConnectError): StatusInfo {
  const info = error.findDetails(ErrorInfoSchema)[0];
  const violations: FieldViolation[] = error
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map(({ field, description, reason }) => ({ field, description, reason })));
  const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return {
    ...localStatus(error.code, error.rawMessage),
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: info?.metadata ?? {},
    fieldViolations: violations,
    retryDelaySeconds: retry === undefined ? undefined : Number(retry.seconds) + retry.nanos / 1e9,
  };
}

/** An operation's `error` (a google.rpc.Status message) in plain values. */
function statusOfMessage(status: Status): StatusInfo {
  let info: MessageShape<typeof ErrorInfoSchema> | undefined;
  const violations: FieldViolation[] = [];
  let retryDelaySeconds: number | undefined;
  for (const detail of status.details) {
    const errorInfo = unpack(detail, ErrorInfoSchema);
    const badRequest = unpack(detail, BadRequestSchema);
    const retryInfo = unpack(detail, RetryInfoSchema);
    info = errorInfo ?? info;
    for (const v of badRequest?.fieldViolations ?? []) {
      violations.push({ field: v.field, description: v.description, reason: v.reason });
    }
    if (retryInfo?.retryDelay !== undefined) {
      retryDelaySeconds = Number(retryInfo.retryDelay.seconds) + retryInfo.retryDelay.nanos / 1e9;
    }
  }
  return {
    ...localStatus(status.code, status.message),
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    metadata: info?.metadata ?? {},
    fieldViolations: violations,
    retryDelaySeconds,
  };
}

function unpack<Desc extends DescMessage>(any: Any, schema: Desc): MessageShape<Desc> | undefined {
  return any.typeUrl.endsWith(`/${schema.typeName}`) ? anyUnpack(any, schema) : undefined;
}

function time(stamp: Timestamp | undefined): Date | undefined {
  return stamp === undefined || (stamp.seconds === 0n && stamp.nanos === 0) ? undefined : timestampDate(stamp);
}

function account(message: AccountMessage | undefined): Account {
  return {
    name: message?.name ?? "",
    keyId: message?.keyId ?? "",
    roles: [...(message?.roles ?? [])],
    disabled: message?.disabled ?? false,
    createTime: time(message?.createTime),
  };
}

function session(message: SessionMessage): Session {
  return {
    accessToken: message.accessToken,
    refreshToken: message.refreshToken,
    expireTime: time(message.expireTime) ?? new Date(0),
    account: account(message.account),
  };
}

function tool(message: ToolMessage): Tool {
  const annotations = message.annotations;
  return {
    name: message.name.replace(/^tools\//, ""),
    resourceName: message.name,
    title: message.title,
    description: message.description,
    version: message.version,
    category: message.category,
    inputSchema: message.inputSchema ?? {},
    outputSchema: message.outputSchema ?? {},
    annotations: {
      readOnly: annotations?.readOnly ?? false,
      destructive: annotations?.destructive ?? false,
      idempotent: annotations?.idempotent ?? false,
      longRunning: annotations?.longRunning ?? false,
    },
    permission: message.permission,
    aliases: [...message.aliases],
  };
}

function metadata(any: Any | undefined): OperationMetadata {
  const meta = any === undefined ? undefined : unpack(any, OperationMetadataSchema);
  if (meta === undefined) {
    return emptyMetadata();
  }
  return {
    tool: meta.tool,
    owner: meta.owner,
    state: OperationMetadata_State[meta.state] as OperationState,
    progressPercent: meta.progressPercent,
    stage: meta.stage,
    statusMessage: meta.statusMessage,
    createTime: time(meta.createTime),
    updateTime: time(meta.updateTime),
    endTime: time(meta.endTime),
    sequence: Number(meta.sequence),
    cancelRequested: meta.cancelRequested,
    attempt: meta.attempt,
    logs: meta.logs.map((line) => ({
      sequence: Number(line.sequence),
      time: time(line.time),
      stream: LogLine_Stream[line.stream] as LogStream,
      text: line.text,
    })),
    requestId: meta.requestId,
  };
}

function event(message: EventMessage): Event {
  return {
    name: message.name,
    type: message.type,
    resource: message.resource,
    owner: message.owner,
    time: time(message.time),
    severity: Event_Severity[message.severity] as EventSeverity,
    message: message.message,
    data: (message.data ?? {}) as JsonObject,
    node: message.node,
  };
}

export function operation(message: OperationMessage): Operation {
  const base = { name: message.name, done: message.done, metadata: metadata(message.metadata) };
  switch (message.result.case) {
    case "response":
      return { ...base, result: unpack(message.result.value, ToolResultSchema)?.output ?? {} };
    case "error":
      return { ...base, error: statusOfMessage(message.result.value) };
    default:
      return base;
  }
}
