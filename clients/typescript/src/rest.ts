/**
 * `RestClient`: the same API as `Client`, through Envoy's REST with `fetch` alone, for
 * programs that only speak HTTP. This entry point (`@formation/mcp-client/rest`) loads
 * nothing but Node.js itself: no protobuf, no gRPC.
 *
 *     const client = new RestClient({ baseUrl: "http://127.0.0.1:8080", keyFile: "key.pem" });
 *     for await (const snapshot of client.operations.watch(name)) console.log(snapshot.metadata.progressPercent);
 */

import { BaseClient, type ClientOptions } from "./client_base.js";
import { RestBackend } from "./rest_backend.js";

export interface RestClientOptions extends ClientOptions {
  /** Envoy's address, `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
}

export class RestClient extends BaseClient {
  constructor(options: RestClientOptions) {
    super(new RestBackend(options.baseUrl), options);
  }
}

export * from "./common.js";
