/**
 * The Formation MCP client for TypeScript: `Client` over gRPC (generated from proto/ into
 * generated/ts), `RestClient` through Envoy's REST with `fetch`; the same calls, values and
 * errors on both. `@formation/mcp-client/rest` has `RestClient` alone, without the gRPC
 * dependencies.
 */

export { Client, type GrpcClientOptions } from "./grpc.js";
export { RestClient, type RestClientOptions } from "./rest.js";
export * from "./common.js";
