/**
 * Plain values for what the API returns, the same whichever door they came through (gRPC or
 * Envoy's REST): tools, operations (metadata, log lines, result or error), events, accounts
 * and sessions; policies as their proto JSON (field names as in the protos). Users never handle protobuf messages or `Any`; every value prints as JSON
 * (`JSON.stringify`: times as RFC 3339). No runtime dependency.
 */

import { errorFromStatus, type FmcpError, type StatusInfo } from "./errors.js";

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export interface ToolAnnotations {
  readonly readOnly: boolean;
  readonly destructive: boolean;
  readonly idempotent: boolean;
  readonly longRunning: boolean;
}

/** A tool: `name` is the short name (`test.echo`), `resourceName` the API's (`tools/test.echo`). */
export interface Tool {
  readonly name: string;
  readonly resourceName: string;
  readonly title: string;
  readonly description: string;
  readonly version: string;
  readonly category: string;
  readonly inputSchema: JsonObject;
  readonly outputSchema: JsonObject;
  readonly annotations: ToolAnnotations;
  readonly permission: string;
  readonly aliases: readonly string[];
}

export type OperationState =
  | "STATE_UNSPECIFIED"
  | "PENDING"
  | "RUNNING"
  | "SUCCEEDED"
  | "FAILED"
  | "CANCELLED";

export type LogStream = "STREAM_UNSPECIFIED" | "STDOUT" | "STDERR" | "SYSTEM";

export interface LogLine {
  readonly sequence: number;
  readonly time: Date | undefined;
  readonly stream: LogStream;
  readonly text: string;
}

export interface OperationMetadata {
  readonly tool: string;
  readonly owner: string;
  readonly state: OperationState;
  readonly progressPercent: number;
  readonly stage: string;
  readonly statusMessage: string;
  readonly createTime: Date | undefined;
  readonly updateTime: Date | undefined;
  readonly endTime: Date | undefined;
  /** Number of the latest change; a watch resumes after it. */
  readonly sequence: number;
  readonly cancelRequested: boolean;
  readonly attempt: number;
  /** In a get, a list or a watch's first snapshot: recent lines; later: the lines added. */
  readonly logs: readonly LogLine[];
  readonly requestId: string;
}

/** An operation: `result` is the tool's output once it succeeded, `error` once it failed or
 * was cancelled (`operationError` turns it into the client's error class). */
export interface Operation {
  readonly name: string;
  readonly done: boolean;
  readonly metadata: OperationMetadata;
  readonly result?: JsonObject;
  readonly error?: StatusInfo;
}

export type EventSeverity = "SEVERITY_UNSPECIFIED" | "INFO" | "WARNING" | "ERROR";

/** Something that happened to a resource: `type` such as `instance.failed`, `resource`
 * `instances/{id}`, `packs/{build_id}`, `operations/{id}` or `nodes/{id}`. */
export interface Event {
  /** `events/{id}`: ids sort in the order events were recorded; a watch resumes after one. */
  readonly name: string;
  readonly type: string;
  readonly resource: string;
  readonly owner: string;
  readonly time: Date | undefined;
  readonly severity: EventSeverity;
  readonly message: string;
  /** Details by type (`exit_code`, `last_lines`, ...). */
  readonly data: JsonObject;
  readonly node: string;
}

export interface Account {
  readonly name: string;
  readonly keyId: string;
  readonly roles: readonly string[];
  readonly disabled: boolean;
  readonly createTime: Date | undefined;
}

/** Tokens for an account, as Login and RefreshToken return them. */
export interface Session {
  readonly accessToken: string;
  readonly refreshToken: string;
  /** When the access token expires. */
  readonly expireTime: Date;
  readonly account: Account;
}

/** A login challenge: sign `message` exactly as given. */
export interface Challenge {
  readonly challengeId: string;
  readonly message: Uint8Array;
}

/** A page of a list call. */
export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
}

/** The error of a done operation as the client's error class (`Cancelled` for a cancelled
 * one), with `operation` naming it; undefined when it did not fail. */
export function operationError(operation: Operation): FmcpError | undefined {
  return operation.error === undefined ? undefined : errorFromStatus(operation.error, operation.name);
}

export function emptyMetadata(): OperationMetadata {
  return {
    tool: "",
    owner: "",
    state: "STATE_UNSPECIFIED",
    progressPercent: 0,
    stage: "",
    statusMessage: "",
    createTime: undefined,
    updateTime: undefined,
    endTime: undefined,
    sequence: 0,
    cancelRequested: false,
    attempt: 0,
    logs: [],
    requestId: "",
  };
}
