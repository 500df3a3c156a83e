/** The demo, as the README runs it: `npm run demo -- ...` over gRPC, and through REST. */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { servers } from "./support.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const PACKAGE = resolve(here, "../../../..");
const DEMO = resolve(here, "../src/demo.js");

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function outcome(command: string, args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(command, args, { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

test("npm run demo logs in, calls the tool and prints every snapshot, then the result", async () => {
  const { grpc, keyFile } = servers();
  const args = ["--target", grpc, "--key-file", keyFile, "--tool", "test.sleep", "--args", '{"steps": 3, "delay_ms": 20}'];
  const { code, stdout, stderr } = await outcome("npm", ["--prefix", PACKAGE, "run", "demo", "--", ...args]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  const result = lines.pop();
  assert.deepEqual(result, { result: { steps: 3 } });
  const sequences = lines.map((line) => (line["metadata"] as { sequence: number }).sequence);
  const first = sequences[0] ?? 0;
  assert.deepEqual(sequences, sequences.map((_, index) => first + index)); // every change, in order
  assert.equal(lines.at(-1)?.["done"], true);
  assert.equal((lines[0]?.["metadata"] as { state: string }).state, "PENDING");
});

test("the demo through REST exits with the error's code and message", async () => {
  const { envoy, keyFile } = servers();
  const args = ["--rest", envoy, "--key-file", keyFile, "--tool", "test.echo", "--args", '{"text": "x", "count": 99}'];
  const { code, stdout, stderr } = await outcome(process.execPath, [DEMO, ...args]);
  assert.equal(code, 3); // fmcp's exit code for INVALID_ARGUMENT
  assert.equal(stdout, "");
  assert.match(stderr, /^error: INVALID_ARGUMENT \(ARGUMENTS_INVALID\): /);
  assert.match(stderr, /\n {2}arguments\.count: 99 is greater than the maximum of 10\n/);
});

test("the demo refuses arguments that are not a JSON object", async () => {
  const { grpc, keyFile } = servers();
  const args = ["--target", grpc, "--key-file", keyFile, "--tool", "test.echo", "--args", "[1]"];
  const { code, stderr } = await outcome(process.execPath, [DEMO, ...args]);
  assert.equal(code, 2);
  assert.match(stderr, /--args must be a JSON object/);
});
