/**
 * `client.events` (what happened to instances, packs, operations and nodes: list, and a watch
 * that resumes by itself after the last event it delivered) and `client.policies` (the rules
 * on tool calls, as proto JSON: get and update for admins, the effective policy for anyone).
 */

import type { BaseClient } from "./client_base.js";
import type { Event, JsonObject } from "./model.js";

export interface ListEventsOptions {
  readonly pageSize?: number | undefined;
  /** Stop after this many. */
  readonly limit?: number | undefined;
  /** Admins: every account's events (and the nodes'). */
  readonly allUsers?: boolean | undefined;
}

export interface WatchEventsOptions {
  /** Start after this event (its name, `events/{id}`); by default after the newest one
   * matching the filter, so nothing recorded from the call on is missed. */
  readonly after?: string | undefined;
  readonly allUsers?: boolean | undefined;
  /** Abort to end the watch. */
  readonly signal?: AbortSignal | undefined;
}

/** `client.events`: filter as in the API (`type = "instance.*" AND severity = ERROR`,
 * `resource = "instances/ID"`). */
export class EventsApi {
  constructor(private readonly client: BaseClient) {}

  /** Events matching the filter, newest first, fetching pages as you iterate. */
  async *list(filter = "", options: ListEventsOptions = {}): AsyncGenerator<Event, void, undefined> {
    let pageToken = "";
    let seen = 0;
    do {
      const request = { filter, pageSize: options.pageSize ?? 0, pageToken, allUsers: options.allUsers ?? false };
      const page = await this.client.unary((call) => this.client.backend.listEvents(request, call), {
        idempotent: true,
      });
      for (const event of page.items) {
        if (options.limit !== undefined && seen >= options.limit) {
          return;
        }
        seen += 1;
        yield event;
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Events as they are recorded, oldest first, until the signal aborts; a dropped stream
   * is resumed after the last event delivered (none lost, none repeated). */
  async *watch(filter = "", options: WatchEventsOptions = {}): AsyncGenerator<Event, void, undefined> {
    const allUsers = options.allUsers ?? false;
    let last = options.after ?? (await this.newest(filter, allUsers));
    const stream = this.client.resumingStream(
      (token) => this.client.backend.watchEvents({ filter, after: last, allUsers }, { token, signal: options.signal }),
      "the event watch ended",
      options.signal,
    );
    for await (const event of stream) {
      last = event.name;
      yield event;
    }
  }

  private async newest(filter: string, allUsers: boolean): Promise<string> {
    for await (const event of this.list(filter, { pageSize: 1, limit: 1, allUsers })) {
      return event.name;
    }
    return "";
  }
}

/** `client.policies`: policies as proto JSON (`allow_tools`, `deny_tools`, `read_only`,
 * `max_instances`, `require_approval`, ...; see proto/formation/mcp/v1/policies.proto). */
export class PoliciesApi {
  constructor(private readonly client: BaseClient) {}

  /** `accounts/{key_id}/policy` or `roles/{role}/policy` (admins). */
  async get(name: string): Promise<JsonObject> {
    return this.client.unary((call) => this.client.backend.getPolicy(name, call), { idempotent: true });
  }

  /** Set the fields named in `updateMask` (all of them when empty) to the values in
   * `policy` (which carries its `name`); a named field absent from `policy` is cleared. */
  async update(policy: JsonObject, updateMask: readonly string[] = []): Promise<JsonObject> {
    return this.client.unary((call) => this.client.backend.updatePolicy(policy, updateMask, call), {
      idempotent: true,
    });
  }

  /** The rules that apply to the caller and its usage against each quota. */
  async effective(): Promise<JsonObject> {
    return this.client.unary((call) => this.client.backend.getEffectivePolicy(call), { idempotent: true });
  }
}
