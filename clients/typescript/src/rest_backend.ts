/**
 * The API through Envoy's REST (the gRPC-JSON transcoder) with `fetch` and nothing else:
 * paths and bodies from the protos' `google.api.http` bindings, answers in proto field names
 * (`progress_percent`), int64 and bytes as strings, errors as `google.rpc.Status` JSON bodies,
 * and a watch as newline-delimited JSON. No runtime dependency.
 */

import type {
  Backend,
  CallOptions,
  CallToolRequest,
  ListEventsRequest,
  ListRequest,
  WatchEventsRequest,
} from "./backend.js";
import {
  Cancelled,
  DeadlineExceeded,
  errorFromStatus,
  FmcpError,
  localStatus,
  statusFromJson,
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
import { ndjsonObjects } from "./ndjson.js";

type Json = Record<string, unknown>;

/** The gRPC code Envoy's HTTP status stands for, when an answer has no Status body (Envoy's
 * own 503 when the server is down, say). */
const CODES_BY_HTTP_STATUS: ReadonlyMap<number, number> = new Map([
  [400, 3],
  [401, 16],
  [403, 7],
  [404, 5],
  [409, 6],
  [429, 8],
  [499, 1],
  [501, 12],
  [502, 14],
  [503, 14],
  [504, 4],
]);

export class RestBackend implements Backend {
  readonly target: string;

  /** `baseUrl`: Envoy's address, `http://127.0.0.1:8080`. */
  constructor(baseUrl: string) {
    this.target = baseUrl.replace(/\/+$/, "");
  }

  async close(): Promise<void> {
    // fetch keeps no connection of ours open.
  }

  async createChallenge(publicKey: Uint8Array, options: CallOptions): Promise<Challenge> {
    const body = await this.request("POST", "/v1/auth/challenge", options, { public_key: base64(publicKey) });
    return { challengeId: str(body["challenge_id"]), message: Buffer.from(str(body["message"]), "base64") };
  }

  async login(challengeId: string, publicKey: Uint8Array, signature: Uint8Array, options: CallOptions): Promise<Session> {
    const body = { challenge_id: challengeId, public_key: base64(publicKey), signature: base64(signature) };
    return session(await this.request("POST", "/v1/auth/login", options, body));
  }

  async refreshToken(refreshToken: string, options: CallOptions): Promise<Session> {
    return session(await this.request("POST", "/v1/auth/token:refresh", options, { refresh_token: refreshToken }));
  }

  async revokeToken(refreshToken: string, options: CallOptions): Promise<void> {
    await this.request("POST", "/v1/auth/token:revoke", options, { refresh_token: refreshToken });
  }

  async getCurrentAccount(options: CallOptions): Promise<Account> {
    return account(await this.request("GET", "/v1/auth/account", options));
  }

  async listTools(request: ListRequest, options: CallOptions): Promise<Page<Tool>> {
    const body = await this.request("GET", `/v1/tools${query(request)}`, options);
    return { items: list(body["tools"]).map(tool), nextPageToken: str(body["next_page_token"]) };
  }

  async getTool(name: string, options: CallOptions): Promise<Tool> {
    return tool(await this.request("GET", `/v1/${path(name)}`, options));
  }

  async callTool(request: CallToolRequest, options: CallOptions): Promise<Operation> {
    const body = {
      arguments: request.arguments,
      request_id: request.requestId,
      validate_only: request.validateOnly,
      ...(request.waitMs > 0 ? { wait: `${request.waitMs / 1000}s` } : {}),
    };
    return operation(await this.request("POST", `/v1/${path(request.name)}:call`, options, body));
  }

  async getOperation(name: string, options: CallOptions): Promise<Operation> {
    return operation(await this.request("GET", `/v1/${path(name)}`, options));
  }

  async listOperations(request: ListRequest, options: CallOptions): Promise<Page<Operation>> {
    const body = await this.request("GET", `/v1/operations${query(request)}`, options);
    return { items: list(body["operations"]).map(operation), nextPageToken: str(body["next_page_token"]) };
  }

  async cancelOperation(name: string, options: CallOptions): Promise<Operation> {
    return operation(await this.request("POST", `/v1/${path(name)}:cancel`, options, {}));
  }

  async deleteOperation(name: string, options: CallOptions): Promise<void> {
    await this.request("DELETE", `/v1/${path(name)}`, options);
  }

  async waitOperation(name: string, timeoutSeconds: number, options: CallOptions): Promise<Operation> {
    const body = { timeout: `${timeoutSeconds.toFixed(3)}s` };
    return operation(await this.request("POST", `/v1/${path(name)}:wait`, options, body));
  }

  async *watchOperation(name: string, afterSequence: number, options: CallOptions): AsyncGenerator<Operation> {
    const url = `${this.target}/v1/${path(name)}:watch${afterSequence > 0 ? `?after_sequence=${afterSequence}` : ""}`;
    for await (const line of this.ndjson(url, options)) {
      yield operation(line);
    }
  }

  async approveOperation(name: string, comment: string, options: CallOptions): Promise<Operation> {
    return operation(await this.request("POST", `/v1/${path(name)}:approve`, options, { comment }));
  }

  async denyOperation(name: string, comment: string, options: CallOptions): Promise<Operation> {
    return operation(await this.request("POST", `/v1/${path(name)}:deny`, options, { comment }));
  }

  async listEvents(request: ListEventsRequest, options: CallOptions): Promise<Page<Event>> {
    const extra = request.allUsers ? ["all_users=true"] : [];
    const body = await this.request("GET", `/v1/events${query(request, extra)}`, options);
    return { items: list(body["events"]).map(event), nextPageToken: str(body["next_page_token"]) };
  }

  async *watchEvents(request: WatchEventsRequest, options: CallOptions): AsyncGenerator<Event> {
    const parts = [
      ...(request.filter ? [`filter=${encodeURIComponent(request.filter)}`] : []),
      ...(request.after ? [`after=${encodeURIComponent(request.after)}`] : []),
      ...(request.allUsers ? ["all_users=true"] : []),
    ];
    const url = `${this.target}/v1/events:watch${parts.length > 0 ? `?${parts.join("&")}` : ""}`;
    for await (const line of this.ndjson(url, options)) {
      yield event(line);
    }
  }

  async getPolicy(name: string, options: CallOptions): Promise<JsonObject> {
    return (await this.request("GET", `/v1/${path(name)}`, options)) as JsonObject;
  }

  async updatePolicy(policy: JsonObject, updateMask: readonly string[], options: CallOptions): Promise<JsonObject> {
    const mask = updateMask.length > 0 ? `?update_mask=${encodeURIComponent(updateMask.join(","))}` : "";
    return (await this.request("PATCH", `/v1/${path(str(policy["name"]))}${mask}`, options, policy)) as JsonObject;
  }

  async getEffectivePolicy(options: CallOptions): Promise<JsonObject> {
    return (await this.request("GET", "/v1/policy:effective", options)) as JsonObject;
  }

  /** A server stream as newline-delimited JSON: each object, or the Status it ended with. */
  private async *ndjson(url: string, options: CallOptions): AsyncGenerator<Json> {
    const stop = new AbortController();
    const signal = options.signal === undefined ? stop.signal : AbortSignal.any([stop.signal, options.signal]);
    try {
      const response = await fetch(url, { headers: headers(options.token), signal });
      if (!response.ok || response.body === null) {
        throw await errorOfResponse(response);
      }
      for await (const line of ndjsonObjects(response.body)) {
        const status = "name" in line ? undefined : statusFromJson(line);
        if (status !== undefined) {
          throw errorFromStatus(status); // the stream ended with an error
        }
        yield line;
      }
    } catch (error) {
      throw fetchError(error, options.signal, undefined);
    } finally {
      stop.abort();
    }
  }

  /** One unary call: JSON in, JSON out, a Status body as the client's error. */
  private async request(method: string, route: string, options: CallOptions, body?: unknown): Promise<Json> {
    const signals: AbortSignal[] = [];
    const timeout = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
    if (timeout !== undefined) {
      signals.push(timeout);
    }
    if (options.signal !== undefined) {
      signals.push(options.signal);
    }
    const init: RequestInit = { method, headers: headers(options.token, body !== undefined) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
    }
    if (signals.length > 0) {
      init.signal = AbortSignal.any(signals);
    }
    try {
      const response = await fetch(`${this.target}${route}`, init);
      if (!response.ok) {
        throw await errorOfResponse(response);
      }
      const answer: unknown = await response.json();
      return isObject(answer) ? answer : {};
    } catch (error) {
      throw fetchError(error, options.signal, timeout);
    }
  }
}

function headers(token: string | undefined, json = false): Record<string, string> {
  const result: Record<string, string> = {};
  if (token) {
    result["authorization"] = `Bearer ${token}`;
  }
  if (json) {
    result["content-type"] = "application/json";
  }
  return result;
}

/** The error an answer that is not OK stands for: its Status body, else its HTTP status. */
async function errorOfResponse(response: Response): Promise<FmcpError> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const status: StatusInfo =
    statusFromJson(body) ??
    localStatus(CODES_BY_HTTP_STATUS.get(response.status) ?? 2, `HTTP ${response.status}: ${text.slice(0, 200)}`);
  return errorFromStatus(status);
}

/** The client's error for what fetch threw: time limit, the caller's abort, or a network
 * failure (UNAVAILABLE: retried; a watch resumes). */
function fetchError(error: unknown, signal: AbortSignal | undefined, timeout: AbortSignal | undefined): FmcpError {
  if (error instanceof FmcpError) {
    return error;
  }
  if (signal?.aborted) {
    return new Cancelled("the call was aborted", { cause: signal.reason });
  }
  if (timeout?.aborted) {
    return new DeadlineExceeded("no answer within the deadline", { cause: error });
  }
  const message = error instanceof Error ? `${error.message}${causeText(error.cause)}` : String(error);
  return new Unavailable(`the connection failed: ${message}`, { cause: error });
}

function causeText(cause: unknown): string {
  return cause instanceof Error ? ` (${cause.message})` : "";
}

function query(request: ListRequest, extra: readonly string[] = []): string {
  const parts: string[] = [...extra];
  if (request.filter) {
    parts.push(`filter=${encodeURIComponent(request.filter)}`);
  }
  if (request.pageSize) {
    parts.push(`page_size=${request.pageSize}`);
  }
  if (request.pageToken) {
    parts.push(`page_token=${encodeURIComponent(request.pageToken)}`);
  }
  return parts.length > 0 ? `?${parts.join("&")}` : "";
}

/** A resource name as a path: each segment escaped, the slashes kept. */
function path(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function obj(value: unknown): Json {
  return isObject(value) ? value : {};
}

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function num(value: unknown): number {
  const parsed = typeof value === "number" ? value : typeof value === "string" ? Number(value) : 0;
  return Number.isFinite(parsed) ? parsed : 0;
}

function time(value: unknown): Date | undefined {
  if (typeof value !== "string" || value === "") {
    return undefined;
  }
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

function account(body: Json): Account {
  return {
    name: str(body["name"]),
    keyId: str(body["key_id"]),
    roles: Array.isArray(body["roles"]) ? body["roles"].map(String) : [],
    disabled: body["disabled"] === true,
    createTime: time(body["create_time"]),
  };
}

function session(body: Json): Session {
  return {
    accessToken: str(body["access_token"]),
    refreshToken: str(body["refresh_token"]),
    expireTime: time(body["expire_time"]) ?? new Date(0),
    account: account(obj(body["account"])),
  };
}

function tool(body: Json): Tool {
  const annotations = obj(body["annotations"]);
  const name = str(body["name"]);
  return {
    name: name.replace(/^tools\//, ""),
    resourceName: name,
    title: str(body["title"]),
    description: str(body["description"]),
    version: str(body["version"]),
    category: str(body["category"]),
    inputSchema: obj(body["input_schema"]) as JsonObject,
    outputSchema: obj(body["output_schema"]) as JsonObject,
    annotations: {
      readOnly: annotations["read_only"] === true,
      destructive: annotations["destructive"] === true,
      idempotent: annotations["idempotent"] === true,
      longRunning: annotations["long_running"] === true,
    },
    permission: str(body["permission"]),
    aliases: Array.isArray(body["aliases"]) ? body["aliases"].map(String) : [],
  };
}

function metadata(value: unknown): OperationMetadata {
  if (!isObject(value)) {
    return emptyMetadata();
  }
  return {
    tool: str(value["tool"]),
    owner: str(value["owner"]),
    state: (str(value["state"]) || "STATE_UNSPECIFIED") as OperationState,
    progressPercent: num(value["progress_percent"]),
    stage: str(value["stage"]),
    statusMessage: str(value["status_message"]),
    createTime: time(value["create_time"]),
    updateTime: time(value["update_time"]),
    endTime: time(value["end_time"]),
    sequence: num(value["sequence"]),
    cancelRequested: value["cancel_requested"] === true,
    attempt: num(value["attempt"]),
    logs: list(value["logs"]).map((line) => ({
      sequence: num(line["sequence"]),
      time: time(line["time"]),
      stream: (str(line["stream"]) || "STREAM_UNSPECIFIED") as LogStream,
      text: str(line["text"]),
    })),
    requestId: str(value["request_id"]),
  };
}

function event(body: Json): Event {
  return {
    name: str(body["name"]),
    type: str(body["type"]),
    resource: str(body["resource"]),
    owner: str(body["owner"]),
    time: time(body["time"]),
    severity: (str(body["severity"]) || "SEVERITY_UNSPECIFIED") as EventSeverity,
    message: str(body["message"]),
    data: obj(body["data"]) as JsonObject,
    node: str(body["node"]),
  };
}

export function operation(body: Json): Operation {
  const base = { name: str(body["name"]), done: body["done"] === true, metadata: metadata(body["metadata"]) };
  if (isObject(body["response"])) {
    return { ...base, result: obj(body["response"]["output"]) as JsonObject };
  }
  const error = statusFromJson(body["error"]);
  return error === undefined ? base : { ...base, error };
}
