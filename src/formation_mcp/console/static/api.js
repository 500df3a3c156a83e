// The REST API through the console's prefix: the session cookie goes along by itself
// (httpOnly, scoped to /console); the CSRF token is read from its cookie and sent back in
// the x-fmcp-csrf header on every call. Errors carry the API's own message.
const PREFIX = "/console/api";

export class ApiError extends Error {}

export function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "fmcp_csrf") return rest.join("=");
  }
  return "";
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(message);
}

export async function call(method, path, body) {
  const init = { method, headers: { "x-fmcp-csrf": csrfToken() }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(PREFIX + path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Reads a watch's NDJSON stream, calling onMessage for each object, until `signal` aborts.
export async function watch(path, onMessage, signal) {
  const response = await fetch(PREFIX + path, {
    headers: { "x-fmcp-csrf": csrfToken() },
    credentials: "same-origin",
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) {
        const message = JSON.parse(line);
        onMessage(message.result ?? message);
      }
    }
  }
}

export async function signOut() {
  const response = await fetch("/console/signout", {
    method: "POST",
    headers: { "x-fmcp-csrf": csrfToken() },
    credentials: "same-origin",
  });
  if (!response.ok) throw await failure(response);
}

// Calls a tool (CallTool with a wait): the operation, done when the tool finished in time.
export async function callTool(name, args = {}, wait = "20s") {
  return call("POST", `/v1/tools/${encodeURIComponent(name)}:call`, { arguments: args, wait });
}

// A finished operation's output; its error as an ApiError.
export function outputOf(operation) {
  if (operation.error) throw new ApiError(operation.error.message ?? "the call failed");
  if (!operation.done) throw new ApiError(`${operation.name} is still running`);
  return operation.response?.output ?? {};
}

// A quick tool's output (vm.list, vm.status, vm.metrics, ...).
export async function quick(name, args = {}) {
  return outputOf(await callTool(name, args));
}
