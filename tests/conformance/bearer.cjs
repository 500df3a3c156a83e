// Preloaded into the MCP conformance suite (node --require): every request it makes, through
// fetch or undici.request, carries `Authorization: Bearer $FMCP_MCP_TOKEN` (the suite has no
// option for it, and our /mcp refuses requests without a token).
const token = process.env.FMCP_MCP_TOKEN;
const originalFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
  if (!headers.has("authorization")) headers.set("authorization", "Bearer " + token);
  return originalFetch(input, { ...init, headers });
};
const undici = require(process.env.FMCP_UNDICI_PATH);
const originalRequest = undici.request;
undici.request = (url, options = {}) => {
  const headers = { ...(options.headers || {}) };
  if (!Object.keys(headers).some((name) => name.toLowerCase() === "authorization")) {
    headers.authorization = "Bearer " + token;
  }
  return originalRequest(url, { ...options, headers });
};
