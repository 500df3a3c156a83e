/**
 * Events, approvals and policies over each door (grpc.test.ts, rest.test.ts) against the real
 * servers: a long-running call's operation.succeeded event listed by resource and delivered by a watch
 * that started after an earlier event; approving or denying needs the approver role; the
 * caller's effective policy.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { type BaseClient, type Event, PermissionDenied } from "../src/index.js";
import { eventually, newKey } from "./support.js";
import type { Door } from "./suite.js";

const TEST_TIMEOUT_MS = 60_000;

async function succeededEvent(client: BaseClient, operation: string): Promise<Event> {
  return eventually(async () => {
    for await (const event of client.events.list(`resource = "${operation}"`)) {
      if (event.type === "operation.succeeded") {
        return event;
      }
    }
    return undefined;
  }, `the operation.succeeded event of ${operation}`);
}

export function eventsSuite(door: Door): void {
  describe(`${door.name} events, approvals and policies`, { timeout: TEST_TIMEOUT_MS, concurrency: true }, () => {
    let client: BaseClient;

    before(() => {
      client = door.make({ key: newKey(), deadlineMs: 20_000 });
    });

    after(async () => {
      await client.close();
    });

    test("a finished call's event is listed by its resource", async () => {
      const operation = await client.tools.call("test.sleep", { steps: 1, delay_ms: 1 });
      const event = await succeededEvent(client, operation.name);
      assert.match(event.name, /^events\//);
      assert.equal(event.severity, "INFO");
      assert.equal(event.owner, (await client.whoami()).name);
      assert.ok(event.time instanceof Date);
    });

    test("a watch after an event delivers the next call's event", async () => {
      const first = await client.tools.call("test.sleep", { steps: 1, delay_ms: 1 });
      const cursor = await succeededEvent(client, first.name);
      const stop = new AbortController();
      const watch = client.events.watch('type = "operation.succeeded"', { after: cursor.name, signal: stop.signal });
      const second = await client.tools.call("test.sleep", { steps: 1, delay_ms: 1 });
      let seen: Event | undefined;
      try {
        for await (const event of watch) {
          assert.ok(event.name > cursor.name, `${event.name} comes after ${cursor.name}`);
          if (event.resource === second.name) {
            seen = event;
            break;
          }
        }
      } finally {
        stop.abort();
      }
      assert.equal(seen?.type, "operation.succeeded");
    });

    test("approving or denying needs the approver role", async () => {
      const operation = await client.tools.call("test.echo", { text: "a" });
      await assert.rejects(client.operations.approve(operation.name, "ok"), PermissionDenied);
      await assert.rejects(client.operations.deny(operation.name, "no"), PermissionDenied);
    });

    test("the effective policy names the caller's account and its sources", async () => {
      const account = await client.whoami();
      const effective = await client.policies.effective();
      const policy = effective["policy"] as { name?: string } | undefined;
      assert.equal(policy?.name, `${account.name}/policy`);
      assert.ok(Array.isArray(effective["sources"]), JSON.stringify(effective));
    });

    test("reading another policy needs an admin", async () => {
      await assert.rejects(client.policies.get("roles/user/policy"), PermissionDenied);
    });
  });
}
