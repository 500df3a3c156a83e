/** The demo, as the README runs it: `npm run demo -- ...` over gRPC, and through REST. */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
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

test("the README's demo block prints what it says", async () => {
  const { grpc, envoy, keyFile } = servers();
  const readme = readFileSync(resolve(PACKAGE, "../../README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Use from TypeScript"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  const expected = [...block.matchAll(/^#> (.+)$/gm)].map((match) => match[1] ?? "");
  assert.ok(expected.length >= 4, block);
  const home = mkdtempSync(join(tmpdir(), "fmcp-readme-"));
  mkdirSync(join(home, ".config/fmcp"), { recursive: true });
  copyFileSync(keyFile, join(home, ".config/fmcp/key.pem")); // as `fmcp keygen` would have
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, GRPC: grpc, ENVOY: new URL(envoy).host };
  delete env["FMCP_KEY_FILE"];
  const { stdout, stderr } = await run("bash", ["-euo", "pipefail", "-c", block], {
    cwd: resolve(PACKAGE, "../.."),
    env,
    timeout: 60_000,
  });
  const output = stdout + stderr;
  assert.deepEqual(
    expected.filter((text) => !output.includes(text)),
    [],
    output,
  );
});

test("the README's TypeScript sample is examples/quickstart.ts, and it runs", async () => {
  const { grpc, keyFile } = servers();
  const readme = readFileSync(resolve(PACKAGE, "../../README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Use from TypeScript"));
  const sample = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.equal(sample, readFileSync(resolve(PACKAGE, "examples/quickstart.ts"), "utf8"));
  const example = resolve(here, "../examples/quickstart.js");
  const { stdout } = await run(process.execPath, [example], {
    env: { ...process.env, FMCP_TARGET: grpc, FMCP_KEY_FILE: keyFile },
    timeout: 60_000,
  });
  assert.match(stdout, /^logged in as accounts\//);
  assert.match(stdout, /\ntools: .*test\.sleep/);
  assert.match(stdout, /\n\[100%\] SUCCEEDED\nresult: \{"steps":3\}\n/);
  assert.match(stdout, /\nARGUMENTS_INVALID \[ 'arguments\.count: 99 is greater than the maximum of 10' \]\n$/);
});
