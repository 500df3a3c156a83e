/**
 * The client's errors: one class per gRPC code, as the Python SDK has them
 * (src/formation_mcp/errors.py), each carrying what the server's `google.rpc.Status` said:
 * the ErrorInfo reason, domain and metadata, the BadRequest field violations and the
 * RetryInfo delay. Over gRPC the status comes in the `grpc-status-details-bin` trailer;
 * through Envoy's REST it is the JSON body; a long-running operation that failed carries it
 * in its `error`. Every path ends in `errorFromStatus`, so callers catch `NotFound` or
 * `InvalidArgument` the same way whichever door they came through.
 *
 * No runtime dependency: the REST client uses this module too.
 */

/** One bad field: `field` is a path such as `page_size` or `arguments.count`. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
  readonly reason: string;
}

/** A received `google.rpc.Status`, its details read into plain values. */
export interface StatusInfo {
  /** The gRPC code's number (3 is INVALID_ARGUMENT). */
  readonly code: number;
  readonly message: string;
  /** ErrorInfo: reason (UPPER_SNAKE), domain (`formation.mcp`) and metadata. */
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** BadRequest's field violations. */
  readonly fieldViolations: readonly FieldViolation[];
  /** RetryInfo's delay, when the server said when to try again. */
  readonly retryDelaySeconds?: number | undefined;
}

/** gRPC code names by number. */
export const CODE_NAMES: readonly string[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

export interface ErrorOptions {
  reason?: string;
  domain?: string;
  metadata?: Readonly<Record<string, string>>;
  fieldViolations?: readonly FieldViolation[];
  retryDelaySeconds?: number | undefined;
  /** The long-running operation that ended with this error, if it was one. */
  operation?: string | undefined;
  cause?: unknown;
}

/** Base of every error the client raises for a server's answer (or for no answer). */
export class FmcpError extends Error {
  /** The gRPC code's number; the subclasses set theirs. */
  static readonly grpcCode: number = 2;
  /** The HTTP status Envoy answers for this code. */
  static readonly httpStatus: number = 500;

  /** The gRPC code's number and name (`NOT_FOUND`). */
  readonly code: number;
  readonly codeName: string;
  readonly httpStatus: number;
  /** The status message as the server wrote it (`message` adds the code and reason). */
  readonly statusMessage: string;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  readonly retryDelaySeconds: number | undefined;
  readonly operation: string | undefined;

  constructor(statusMessage: string, options: ErrorOptions = {}) {
    const kind = new.target as typeof FmcpError;
    const codeName = CODE_NAMES[kind.grpcCode] ?? "UNKNOWN";
    const reason = options.reason ?? "";
    const label = codeName + (reason ? ` (${reason})` : "");
    const where = options.operation ? ` [${options.operation}]` : "";
    super(`${label}${where}: ${statusMessage}`, { cause: options.cause });
    this.name = kind.name;
    this.code = kind.grpcCode;
    this.codeName = codeName;
    this.httpStatus = kind.httpStatus;
    this.statusMessage = statusMessage;
    this.reason = reason;
    this.domain = options.domain ?? "";
    this.metadata = { ...(options.metadata ?? {}) };
    this.fieldViolations = [...(options.fieldViolations ?? [])];
    this.retryDelaySeconds = options.retryDelaySeconds;
    this.operation = options.operation;
  }
}

export class Cancelled extends FmcpError {
  static override readonly grpcCode = 1;
  static override readonly httpStatus = 499;
}
export class Unknown extends FmcpError {
  static override readonly grpcCode = 2;
  static override readonly httpStatus = 500;
}
export class InvalidArgument extends FmcpError {
  static override readonly grpcCode = 3;
  static override readonly httpStatus = 400;
}
export class DeadlineExceeded extends FmcpError {
  static override readonly grpcCode = 4;
  static override readonly httpStatus = 504;
}
export class NotFound extends FmcpError {
  static override readonly grpcCode = 5;
  static override readonly httpStatus = 404;
}
export class AlreadyExists extends FmcpError {
  static override readonly grpcCode = 6;
  static override readonly httpStatus = 409;
}
export class PermissionDenied extends FmcpError {
  static override readonly grpcCode = 7;
  static override readonly httpStatus = 403;
}
export class ResourceExhausted extends FmcpError {
  static override readonly grpcCode = 8;
  static override readonly httpStatus = 429;
}
export class FailedPrecondition extends FmcpError {
  static override readonly grpcCode = 9;
  static override readonly httpStatus = 400;
}
export class Aborted extends FmcpError {
  static override readonly grpcCode = 10;
  static override readonly httpStatus = 409;
}
export class OutOfRange extends FmcpError {
  static override readonly grpcCode = 11;
  static override readonly httpStatus = 400;
}
export class Unimplemented extends FmcpError {
  static override readonly grpcCode = 12;
  static override readonly httpStatus = 501;
}
export class Internal extends FmcpError {
  static override readonly grpcCode = 13;
  static override readonly httpStatus = 500;
}
export class Unavailable extends FmcpError {
  static override readonly grpcCode = 14;
  static override readonly httpStatus = 503;
}
export class DataLoss extends FmcpError {
  static override readonly grpcCode = 15;
  static override readonly httpStatus = 500;
}
export class Unauthenticated extends FmcpError {
  static override readonly grpcCode = 16;
  static override readonly httpStatus = 401;
}

/** The class of every gRPC code but OK, by the code's number. */
export const ERROR_CLASSES: ReadonlyMap<number, typeof FmcpError> = new Map(
  [
    Cancelled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
  ].map((kind) => [kind.grpcCode, kind]),
);

/** The error for a received status (of a call, or of the long-running `operation`). */
export function errorFromStatus(status: StatusInfo, operation?: string, cause?: unknown): FmcpError {
  const kind = ERROR_CLASSES.get(status.code) ?? Unknown;
  return new kind(status.message, {
    reason: status.reason,
    domain: status.domain,
    metadata: status.metadata,
    fieldViolations: status.fieldViolations,
    retryDelaySeconds: status.retryDelaySeconds,
    operation,
    cause,
  });
}

const TYPE_PREFIX = "type.googleapis.com/";

/**
 * A `google.rpc.Status` in its JSON form (Envoy's REST error bodies, an operation's `error`
 * in REST answers): `{code, message, details: [{"@type": ".../google.rpc.ErrorInfo", ...}]}`.
 * Field names may be the proto's (`field_violations`, as Envoy prints them) or JSON's
 * (`fieldViolations`). Returns undefined when `body` is not a status.
 */
export function statusFromJson(body: unknown): StatusInfo | undefined {
  if (!isObject(body) || typeof body["code"] !== "number") {
    return undefined;
  }
  let reason = "";
  let domain = "";
  let metadata: Record<string, string> = {};
  const fieldViolations: FieldViolation[] = [];
  let retryDelaySeconds: number | undefined;
  const details = Array.isArray(body["details"]) ? body["details"] : [];
  for (const detail of details) {
    if (!isObject(detail)) {
      continue;
    }
    const type = String(detail["@type"] ?? "").replace(TYPE_PREFIX, "");
    if (type === "google.rpc.ErrorInfo") {
      reason = text(detail["reason"]);
      domain = text(detail["domain"]);
      metadata = isObject(detail["metadata"])
        ? Object.fromEntries(Object.entries(detail["metadata"]).map(([k, v]) => [k, text(v)]))
        : {};
    } else if (type === "google.rpc.BadRequest") {
      const violations = detail["field_violations"] ?? detail["fieldViolations"];
      for (const violation of Array.isArray(violations) ? violations : []) {
        if (isObject(violation)) {
          fieldViolations.push({
            field: text(violation["field"]),
            description: text(violation["description"]),
            reason: text(violation["reason"]),
          });
        }
      }
    } else if (type === "google.rpc.RetryInfo") {
      retryDelaySeconds = durationSeconds(detail["retry_delay"] ?? detail["retryDelay"]);
    }
  }
  return {
    code: body["code"],
    message: text(body["message"]),
    reason,
    domain,
    metadata,
    fieldViolations,
    retryDelaySeconds,
  };
}

/** A JSON Duration (`"1.5s"`) in seconds. */
export function durationSeconds(value: unknown): number | undefined {
  if (typeof value !== "string" || !value.endsWith("s")) {
    return undefined;
  }
  const seconds = Number(value.slice(0, -1));
  return Number.isFinite(seconds) ? seconds : undefined;
}

/** A status made on this side (no answer, a broken connection, a time limit). */
export function localStatus(code: number, message: string): StatusInfo {
  return { code, message, reason: "", domain: "", metadata: {}, fieldViolations: [] };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string {
  return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
}
