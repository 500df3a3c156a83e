/**
 * The demo: log in with a key file, call one tool, print every operation snapshot seen as one
 * JSON line on stdout and the result last (`{"result": ...}`); exit 0 on success, else print
 * the error's code and message on stderr and exit with the code `fmcp` uses for it.
 *
 *     npm --prefix clients/typescript run demo -- --target 127.0.0.1:50051 --key-file key.pem \
 *       --tool test.sleep --args '{"steps": 3}'
 *     npm --prefix clients/typescript run demo -- --rest http://127.0.0.1:8080 ...
 *
 * Ctrl-C cancels the operation (exit 12, as `fmcp` does).
 */

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { FmcpError, type JsonObject, type Operation } from "./common.js";
import { Client } from "./grpc.js";
import { RestClient } from "./rest.js";

/** `fmcp`'s exit codes by gRPC code (README, Configuration); 1 for the others. */
const EXIT_CODES: ReadonlyMap<number, number> = new Map([
  [3, 3],
  [16, 4],
  [7, 5],
  [5, 6],
  [6, 7],
  [9, 8],
  [8, 9],
  [14, 10],
  [4, 11],
  [1, 12],
]);
const USAGE = `usage: npm run demo -- [--target HOST:PORT | --rest http://HOST:PORT] [--key-file KEY.pem] --tool NAME [--args JSON]
  --target    the server's gRPC address (FMCP_TARGET, default 127.0.0.1:50051)
  --rest      Envoy's REST address instead of gRPC
  --key-file  an Ed25519 key as \`fmcp keygen\` writes it (FMCP_KEY_FILE, default ~/.config/fmcp/key.pem)
  --tool      the tool to call (test.echo, pack.build, ...)
  --args      its arguments, a JSON object (default {})`;

interface DemoArguments {
  readonly target: string;
  readonly rest: string | undefined;
  readonly keyFile: string;
  readonly tool: string;
  readonly args: JsonObject;
}

export function parseDemoArguments(argv: readonly string[], env: NodeJS.ProcessEnv): DemoArguments {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      target: { type: "string" },
      rest: { type: "string" },
      "key-file": { type: "string" },
      tool: { type: "string" },
      args: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help || !values.tool) {
    throw new UsageError(values.help ? "" : "--tool is required");
  }
  let args: unknown;
  try {
    args = JSON.parse(values.args ?? "{}");
  } catch (error) {
    throw new UsageError(`--args is not JSON: ${(error as Error).message}`);
  }
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new UsageError("--args must be a JSON object");
  }
  return {
    target: values.target ?? env["FMCP_TARGET"] ?? "127.0.0.1:50051",
    rest: values.rest,
    keyFile: values["key-file"] ?? env["FMCP_KEY_FILE"] ?? "~/.config/fmcp/key.pem",
    tool: values.tool,
    args: args as JsonObject,
  };
}

class UsageError extends Error {}

async function main(): Promise<number> {
  let demo: DemoArguments;
  try {
    demo = parseDemoArguments(process.argv.slice(2), process.env);
  } catch (error) {
    process.stderr.write(`${error instanceof Error && error.message ? `error: ${error.message}\n` : ""}${USAGE}\n`);
    return 2;
  }
  const credentials = { keyFile: demo.keyFile };
  const client =
    demo.rest !== undefined
      ? new RestClient({ baseUrl: demo.rest, ...credentials })
      : new Client({ target: demo.target, ...credentials });
  const interrupted = new AbortController();
  process.once("SIGINT", () => interrupted.abort(new Error("interrupted")));
  try {
    const result = await client.callAndWait(demo.tool, demo.args, {
      onProgress: (operation: Operation) => print(operation),
      signal: interrupted.signal,
    });
    print({ result });
    return 0;
  } catch (error) {
    if (!(error instanceof FmcpError)) {
      throw error;
    }
    process.stderr.write(`error: ${error.message}\n`);
    for (const violation of error.fieldViolations) {
      process.stderr.write(`  ${violation.field}: ${violation.description}\n`);
    }
    return EXIT_CODES.get(error.code) ?? 1;
  } finally {
    await client.close();
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
