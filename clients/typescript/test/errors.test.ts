/** The error model: one class per gRPC code, with what a google.rpc.Status carries. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CODE_NAMES,
  ERROR_CLASSES,
  errorFromStatus,
  FmcpError,
  InvalidArgument,
  localStatus,
  ResourceExhausted,
  statusFromJson,
  Unavailable,
} from "../src/rest.js";

test("every gRPC code but OK has its class", () => {
  for (let code = 1; code <= 16; code += 1) {
    const error = errorFromStatus(localStatus(code, "m"));
    const kind = ERROR_CLASSES.get(code);
    assert.ok(kind !== undefined && error instanceof kind && error instanceof FmcpError);
    assert.equal(error.code, code);
    assert.equal(error.codeName, CODE_NAMES[code]);
    assert.equal(error.statusMessage, "m");
  }
});

test("the classes are the Python SDK's: same names, codes and HTTP statuses", () => {
  // The harness passes formation_mcp.errors.ERROR_CLASSES as JSON.
  const python = JSON.parse(process.env["FMCP_TS_PYTHON_ERRORS"] ?? "null") as
    | { name: string; code: number; http_status: number }[]
    | null;
  assert.ok(python !== null, "FMCP_TS_PYTHON_ERRORS is not set (the harness sets it)");
  const ours = [...ERROR_CLASSES.values()].map((kind) => ({
    name: kind.name,
    code: kind.grpcCode,
    http_status: kind.httpStatus,
  }));
  const byCode = (a: { code: number }, b: { code: number }): number => a.code - b.code;
  assert.deepEqual(ours.sort(byCode), [...python].sort(byCode));
});

test("a REST error body is read into the error's details", () => {
  const body = {
    code: 3,
    message: "arguments do not match",
    details: [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "ARGUMENTS_INVALID",
        domain: "formation.mcp",
        metadata: { tool: "test.echo", violations: "1" },
      },
      {
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        field_violations: [{ field: "arguments.count", description: "too big", reason: "MAXIMUM" }],
      },
      { "@type": "type.googleapis.com/google.rpc.RequestInfo", request_id: "r" },
    ],
  };
  const status = statusFromJson(body);
  assert.ok(status !== undefined);
  const error = errorFromStatus(status, "operations/abc");
  assert.ok(error instanceof InvalidArgument);
  assert.equal(error.reason, "ARGUMENTS_INVALID");
  assert.equal(error.domain, "formation.mcp");
  assert.deepEqual(error.metadata, { tool: "test.echo", violations: "1" });
  assert.deepEqual(error.fieldViolations, [{ field: "arguments.count", description: "too big", reason: "MAXIMUM" }]);
  assert.equal(error.operation, "operations/abc");
  assert.equal(error.message, "INVALID_ARGUMENT (ARGUMENTS_INVALID) [operations/abc]: arguments do not match");
});

test("RetryInfo's delay is read, in either JSON spelling", () => {
  for (const key of ["retry_delay", "retryDelay"]) {
    const status = statusFromJson({
      code: 8,
      message: "slow down",
      details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", [key]: "1.500s" }],
    });
    const error = errorFromStatus(status ?? localStatus(2, ""));
    assert.ok(error instanceof ResourceExhausted);
    assert.equal(error.retryDelaySeconds, 1.5);
  }
});

test("a body that is not a Status is not read as one", () => {
  assert.equal(statusFromJson({ name: "operations/x" }), undefined);
  assert.equal(statusFromJson("upstream connect error"), undefined);
  assert.ok(errorFromStatus(localStatus(14, "down")) instanceof Unavailable);
});
