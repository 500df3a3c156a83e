/**
 * The behaviours every door must have, run over gRPC (grpc.test.ts) and over Envoy's REST
 * (rest.test.ts) against the real servers: log in with a key file from `fmcp keygen`, list
 * tools, quick and long calls, every progress event in order, cancel, a dropped stream resumed
 * without losing or repeating a change, typed errors with their details, tokens renewed.
 */

import assert from "node:assert/strict";
import { createHash, type KeyObject } from "node:crypto";
import { after, before, describe, test } from "node:test";

import {
  type BaseClient,
  Cancelled,
  type ClientOptions,
  DeadlineExceeded,
  FailedPrecondition,
  InvalidArgument,
  NotFound,
  type Operation,
  operationError,
  publicKeyBytes,
  resultOf,
  Unauthenticated,
} from "../src/index.js";
import { eventually, newKey, servers, TcpProxy } from "./support.js";

export interface Door {
  readonly name: string;
  /** A client of this door to `address` (the default server's when absent). */
  make(options: ClientOptions, address?: string): BaseClient;
  /** The default server's address for this door, and the short-TTL server's. */
  readonly address: string;
  /** The default server's `host:port` for this door (a proxy's upstream). */
  readonly hostPort: string;
  readonly shortTtlAddress: string;
  /** How a client reaches the server through a proxy at `proxy` (`127.0.0.1:PORT`). */
  viaProxy(proxy: string): string;
}

const TEST_TIMEOUT_MS = 60_000;

async function collect(watch: AsyncIterable<Operation>, each?: (operation: Operation) => void): Promise<Operation[]> {
  const seen: Operation[] = [];
  for await (const snapshot of watch) {
    seen.push(snapshot);
    each?.(snapshot);
  }
  return seen;
}

function sequences(snapshots: readonly Operation[]): number[] {
  return snapshots.map((snapshot) => snapshot.metadata.sequence);
}

function consecutive(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => from + index);
}

/** Progress values in the order they first appear. */
function progressSteps(snapshots: readonly Operation[]): number[] {
  const steps: number[] = [];
  for (const snapshot of snapshots) {
    const percent = snapshot.metadata.progressPercent;
    if (percent > 0 && steps.at(-1) !== percent) {
      steps.push(percent);
    }
  }
  return steps;
}

function logTexts(snapshots: readonly Operation[]): string[] {
  return snapshots.flatMap((snapshot) => snapshot.metadata.logs.map((line) => line.text));
}

export function clientSuite(door: Door): void {
  // Concurrently: each test is its own account (or only reads), so none sees another's work.
  describe(`${door.name} client`, { timeout: TEST_TIMEOUT_MS, concurrency: true }, () => {
    let key: KeyObject;
    let client: BaseClient;

    before(() => {
      key = newKey();
      client = door.make({ key, deadlineMs: 20_000 });
    });

    after(async () => {
      await client.close();
    });

    test("logs in with a key file written by fmcp keygen", async () => {
      const { keyFile, keyId } = servers();
      const fromFile = door.make({ keyFile });
      try {
        const account = await fromFile.whoami();
        assert.equal(account.keyId, keyId);
        assert.equal(account.name, `accounts/${keyId}`);
        assert.deepEqual(account.roles, ["user"]);
      } finally {
        await fromFile.close();
      }
    });

    test("the account is the key's: its id is the SHA-256 of the public key", async () => {
      const account = await client.login();
      const expected = createHash("sha256").update(publicKeyBytes(key)).digest("base64url");
      assert.equal(account.keyId, expected);
    });

    test("lists the tools with their schemas and annotations", async () => {
      const tools = await client.tools.list('category = "test"');
      const names = tools.map((tool) => tool.name);
      assert.ok(names.includes("test.echo") && names.includes("test.sleep"), names.join(", "));
      const sleep = await client.tools.get("test.sleep");
      assert.equal(sleep.resourceName, "tools/test.sleep");
      assert.equal(sleep.annotations.longRunning, true);
      // Every tool also takes the optional `reason` (the call's, for an approver).
      assert.deepEqual(Object.keys(sleep.inputSchema["properties"] as object).sort(), [
        "delay_ms",
        "reason",
        "steps",
      ]);
    });

    test("a quick call comes back done with its output", async () => {
      const operation = await client.tools.call("test.echo", { text: "hi", count: 2 });
      assert.equal(operation.done, true);
      assert.equal(operation.metadata.state, "SUCCEEDED");
      assert.deepEqual(operation.result, { echo: "hihi" });
      assert.deepEqual(await client.callAndWait("test.echo", { text: "yo" }), { echo: "yo" });
    });

    test("a long call is watched to the end with every progress event in order", async () => {
      const started = await client.tools.call("test.sleep", { steps: 5, delay_ms: 40 });
      assert.equal(started.done, false);
      const seen = await collect(client.operations.watch(started.name, { afterSequence: started.metadata.sequence }));
      const last = seen.at(-1);
      assert.ok(last !== undefined && last.done);
      assert.deepEqual(sequences(seen), consecutive(started.metadata.sequence + 1, seen.length));
      assert.deepEqual(progressSteps(seen), [20, 40, 60, 80, 100]);
      assert.deepEqual(logTexts(seen), [1, 2, 3, 4, 5].map((step) => `step ${step} of 5`));
      assert.equal(last.metadata.state, "SUCCEEDED");
      assert.deepEqual(resultOf(last), { steps: 5 });
      const fetched = await client.operations.get(started.name);
      assert.equal(fetched.metadata.sequence, last.metadata.sequence);
    });

    test("callAndWait gives onProgress every change and returns the output", async () => {
      const seen: Operation[] = [];
      const output = await client.callAndWait("test.sleep", { steps: 4, delay_ms: 20 }, { onProgress: (op) => seen.push(op) });
      assert.deepEqual(output, { steps: 4 });
      assert.equal(seen[0]?.metadata.state, "PENDING"); // the call's own answer comes first
      assert.deepEqual(sequences(seen), consecutive(seen[0]?.metadata.sequence ?? 0, seen.length));
      assert.deepEqual(progressSteps(seen), [25, 50, 75, 100]);
    });

    test("a cancelled operation ends CANCELLED and raises Cancelled", async () => {
      const started = await client.tools.call("test.sleep", { steps: 1000, delay_ms: 50 });
      await eventually(async () => {
        const now = await client.operations.get(started.name);
        return now.metadata.state === "RUNNING" ? now : undefined;
      }, "the operation runs");
      const cancelling = await client.operations.cancel(started.name);
      assert.equal(cancelling.metadata.cancelRequested, true);
      const final = await client.operations.wait(started.name, { timeoutMs: 20_000 });
      assert.equal(final.done, true);
      assert.equal(final.metadata.state, "CANCELLED");
      assert.ok(operationError(final) instanceof Cancelled);
      assert.throws(() => resultOf(final), Cancelled);
    });

    test("aborting callAndWait cancels the operation", async () => {
      const stop = new AbortController();
      let name = "";
      const waiting = client.callAndWait(
        "test.sleep",
        { steps: 1000, delay_ms: 50 },
        {
          signal: stop.signal,
          onProgress: (op) => {
            name = op.name;
            if (op.metadata.progressPercent > 0) {
              stop.abort();
            }
          },
        },
      );
      await assert.rejects(waiting, (error: unknown) => error instanceof Cancelled && error.operation === name);
      const final = await client.operations.wait(name, { timeoutMs: 20_000 });
      assert.equal(final.metadata.state, "CANCELLED");
    });

    test("callAndWait's timeout is DeadlineExceeded and the operation keeps running", async () => {
      let name = "";
      const waiting = client.callAndWait(
        "test.sleep",
        { steps: 1000, delay_ms: 50 },
        { timeoutMs: 300, onProgress: (op) => void (name = op.name) },
      );
      await assert.rejects(waiting, (error: unknown) => error instanceof DeadlineExceeded && error.operation === name);
      const running = await client.operations.get(name);
      assert.equal(running.done, false);
      const cancelled = await client.operations.cancel(name);
      // Flagged for its worker when it runs; cancelled at once when it is still pending (a
      // busy machine may not have started it within the timeout).
      assert.ok(cancelled.metadata.cancelRequested || cancelled.metadata.state === "CANCELLED");
    });

    test("a dropped watch resumes without losing or repeating a change", async () => {
      const proxy = await TcpProxy.start(door.hostPort);
      const through = door.make({ key }, door.viaProxy(proxy.address));
      try {
        const started = await through.tools.call("test.sleep", { steps: 20, delay_ms: 50 });
        let dropped = false;
        const seen = await collect(through.operations.watch(started.name), (snapshot) => {
          if (!dropped && snapshot.metadata.progressPercent >= 15) {
            dropped = true;
            proxy.drop();
          }
        });
        assert.ok(dropped, "the stream was dropped");
        assert.ok(proxy.connections >= 2, `resumed on a new connection (${proxy.connections})`);
        const first = seen[0]?.metadata.sequence ?? 0;
        assert.deepEqual(sequences(seen), consecutive(first, seen.length));
        assert.equal(progressSteps(seen).at(-1), 100);
        assert.deepEqual(resultOf(seen.at(-1) as Operation), { steps: 20 });
      } finally {
        await through.close();
        await proxy.close();
      }
    });

    test("bad arguments are InvalidArgument with the field violations", async () => {
      const refused = await client.tools.call("test.echo", { text: "x", count: 99 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof InvalidArgument, String(refused));
      assert.equal(refused.code, 3);
      assert.equal(refused.codeName, "INVALID_ARGUMENT");
      assert.equal(refused.httpStatus, 400);
      assert.equal(refused.reason, "ARGUMENTS_INVALID");
      assert.equal(refused.domain, "formation.mcp");
      assert.equal(refused.metadata["tool"], "test.echo");
      assert.deepEqual(
        refused.fieldViolations.map((v) => [v.field, v.reason]),
        [["arguments.count", "MAXIMUM"]],
      );
    });

    test("an unknown tool is NotFound with its reason", async () => {
      await assert.rejects(client.tools.get("no.such.tool"), (error: unknown) => {
        return error instanceof NotFound && error.reason === "TOOL_NOT_FOUND";
      });
    });

    test("a failed operation raises its error's class, naming the operation", async () => {
      await assert.rejects(client.callAndWait("test.fail"), (error: unknown) => {
        return error instanceof FailedPrecondition && error.reason === "TEST_FAILURE" && error.operation !== undefined;
      });
    });

    test("operations are listed newest first, page by page", async () => {
      const lister = door.make({ key: newKey() });
      try {
        const made: string[] = [];
        for (const text of ["1", "2", "3"]) {
          made.unshift((await lister.tools.call("test.echo", { text })).name);
        }
        const names: string[] = [];
        for await (const operation of lister.operations.list('tool = "test.echo"', { pageSize: 1 })) {
          names.push(operation.name);
        }
        assert.deepEqual(names, made);
        const limited: string[] = [];
        for await (const operation of lister.operations.list("", { limit: 2 })) {
          limited.push(operation.name);
        }
        assert.deepEqual(limited, made.slice(0, 2));
      } finally {
        await lister.close();
      }
    });

    test("a bad token is Unauthenticated", async () => {
      const stranger = door.make({ token: "not-a-token" });
      try {
        await assert.rejects(stranger.whoami(), (error: unknown) => {
          return error instanceof Unauthenticated && error.reason === "TOKEN_INVALID";
        });
      } finally {
        await stranger.close();
      }
    });

    test("the access token is refreshed before it expires", async () => {
      let now = Date.now();
      const timed = door.make({ key: newKey(), clock: () => now });
      try {
        await timed.whoami();
        const first = timed.tokenSource.session;
        assert.ok(first !== undefined);
        now = first.expireTime.getTime(); // the client's clock says: expired
        await timed.whoami();
        const second = timed.tokenSource.session;
        assert.ok(second !== undefined);
        assert.notEqual(second.accessToken, first.accessToken);
        assert.notEqual(second.refreshToken, first.refreshToken); // rotated: it was a refresh
      } finally {
        await timed.close();
      }
    });

    test("a refused token is renewed once and the call repeated", async () => {
      const renewing = door.make({ key: newKey() });
      try {
        const account = await renewing.whoami();
        const session = renewing.tokenSource.session;
        assert.ok(session !== undefined);
        // Revoked behind the client's back: the access token and the refresh family stop working.
        await renewing.backend.revokeToken(session.refreshToken, { token: session.accessToken });
        assert.equal((await renewing.whoami()).name, account.name);
        assert.notEqual(renewing.tokenSource.session?.accessToken, session.accessToken);
      } finally {
        await renewing.close();
      }
    });

    test("an expired token is renewed", async () => {
      // The server's tokens live 1 s; this client's clock runs an hour slow, so it never
      // refreshes ahead: the server has to refuse the token first.
      const options = { key: newKey(), refreshMarginSeconds: 0, clock: () => Date.now() - 3_600_000 };
      const slow = door.make(options, door.shortTtlAddress);
      try {
        await slow.whoami();
        const first = slow.tokenSource.session;
        assert.ok(first !== undefined);
        const probe = door.make({ token: first.accessToken }, door.shortTtlAddress);
        const refusal = await eventually(
          () => probe.whoami().then(() => undefined, (error: unknown) => error),
          "the server refuses the token as expired",
        );
        await probe.close();
        assert.ok(refusal instanceof Unauthenticated && refusal.reason === "TOKEN_EXPIRED", String(refusal));
        const account = await slow.whoami();
        assert.equal(account.name, first.account.name);
        const second = slow.tokenSource.session;
        assert.ok(second !== undefined);
        assert.notEqual(second.refreshToken, first.refreshToken); // renewed by a refresh
      } finally {
        await slow.close();
      }
    });
  });
}
