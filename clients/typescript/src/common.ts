/** What both entry points export besides their client: errors, values, keys, helpers. */

export {
  BaseClient,
  DEFAULT_DEADLINE_MS,
  DEFAULT_RETRY,
  OperationsApi,
  ToolsApi,
  operationResource,
  resultOf,
  toolResource,
  type CallAndWaitOptions,
  type CallToolOptions,
  type ClientOptions,
  type FollowOptions,
  type ListOperationsOptions,
  type ProgressCallback,
  type RetryPolicy,
  type WatchOptions,
} from "./client_base.js";
export * from "./errors.js";
export {
  EventsApi,
  PoliciesApi,
  type ListEventsOptions,
  type WatchEventsOptions,
} from "./events_policies.js";
export { keyFromEnv, loadKey, loadKeyFile, publicKeyBytes, signMessage } from "./keys.js";
export * from "./model.js";
export { REFRESH_MARGIN_SECONDS, TokenSource, type TokenSourceOptions } from "./tokens.js";
