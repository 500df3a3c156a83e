// The console's pages. Each takes the page element and an AbortSignal that ends it when
// another page is shown; errors go to `report` (shown as the API's message).
import { call, watch } from "./api.js";
import { el, table } from "./dom.js";
import { poll } from "./polling.js";

const STATES_DONE = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

function idOf(name) {
  return name.replace(/^operations\//, "");
}

function operationRow(operation, actions) {
  const meta = operation.metadata ?? {};
  const state = meta.state ?? "STATE_UNSPECIFIED";
  const percent = meta.progress_percent ?? 0;
  return el(
    "tr",
    { "data-operation": operation.name },
    el("td", {}, el("a", { href: `#operation/${idOf(operation.name)}` }, el("code", {}, idOf(operation.name)))),
    el("td", {}, meta.tool ?? ""),
    el("td", { class: "state" }, state),
    el(
      "td",
      {},
      el("progress", { max: "100", value: String(percent), "aria-label": `${percent}%` }),
      ` ${percent}%`,
    ),
    el("td", {}, meta.stage || meta.status_message || ""),
    el("td", {}, actions),
  );
}

export function operations(page, signal, report) {
  const filter = el("input", { type: "text", placeholder: 'tool = "pack.*"', "aria-label": "Filter" });
  const list = el("div");
  page.replaceChildren(
    el("h1", {}, "Operations"),
    el("p", {}, el("label", {}, "Filter ", filter)),
    list,
  );
  const cancel = (name) => async () => {
    try {
      await call("POST", `/v1/operations/${idOf(name)}:cancel`, {});
    } catch (error) {
      report(error.message);
    }
  };
  poll(signal, report, async () => {
    const query = new URLSearchParams({ page_size: "50" });
    if (filter.value.trim()) query.set("filter", filter.value.trim());
    const answer = await call("GET", `/v1/operations?${query}`);
    const rows = (answer.operations ?? []).map((operation) => {
      const state = operation.metadata?.state;
      const actions = STATES_DONE.has(state)
        ? []
        : [el("button", { type: "button", onclick: cancel(operation.name) }, "Cancel")];
      return operationRow(operation, actions);
    });
    list.replaceChildren(
      table(["Operation", "Tool", "State", "Progress", "Stage", ""], rows, "No operations."),
    );
  });
}

export function approvals(page, signal, report) {
  const list = el("div");
  page.replaceChildren(
    el("h1", {}, "Approvals"),
    el("p", {}, "Calls held back by policy for an approver."),
    list,
  );
  const decide = (name, verb, comment) => async () => {
    try {
      await call("POST", `/v1/operations/${idOf(name)}:${verb}`, { comment: comment?.value ?? "" });
    } catch (error) {
      report(error.message);
    }
  };
  poll(signal, report, async () => {
    // Keep what is being typed: rows are rebuilt only for operations that changed.
    const query = new URLSearchParams({
      filter: "awaiting_my_approval = true",
      page_size: "50",
    });
    const answer = await call("GET", `/v1/operations?${query}`);
    const waiting = answer.operations ?? [];
    const names = waiting.map((operation) => operation.name).join(",");
    if (list.dataset.names === names) return;
    list.dataset.names = names;
    const rows = waiting.map((operation) => {
      const comment = el("input", {
        type: "text",
        placeholder: "Why (required to deny)",
        "aria-label": "Comment",
      });
      const meta = operation.metadata ?? {};
      const approval = meta.approval ?? {};
      return el(
        "tr",
        { "data-operation": operation.name },
        el("td", {}, el("a", { href: `#operation/${idOf(operation.name)}` }, el("code", {}, idOf(operation.name)))),
        el("td", {}, meta.tool ?? ""),
        el("td", {}, meta.owner ?? ""),
        el(
          "td",
          {},
          approval.reason ? `“${approval.reason}”` : "",
          el("pre", {}, JSON.stringify(approval.arguments ?? {}, null, 2)),
          approval.arguments_truncated ? "(arguments truncated)" : "",
        ),
        el(
          "td",
          {},
          comment,
          el("button", { type: "button", onclick: decide(operation.name, "approve", comment) }, "Approve"),
          el("button", { type: "button", onclick: decide(operation.name, "deny", comment) }, "Deny"),
        ),
      );
    });
    list.replaceChildren(
      table(["Operation", "Tool", "Caller", "Request", "Decide"], rows, "Nothing waits for you."),
    );
  });
}

const MAX_EVENTS = 200;

function eventRow(event) {
  return el(
    "tr",
    {},
    el("td", {}, event.time ?? ""),
    el("td", { class: `sev-${event.severity}` }, event.type ?? ""),
    el("td", {}, el("code", {}, event.resource ?? "")),
    el("td", {}, event.message ?? ""),
  );
}

// The filter the API takes (AIP-160 subset): type (a trailing * matches a prefix), resource,
// severity, joined by AND.
function eventFilter(type, resource, severity) {
  const parts = [];
  if (type) parts.push(`type = ${JSON.stringify(type)}`);
  if (resource) parts.push(`resource = ${JSON.stringify(resource)}`);
  if (severity) parts.push(`severity = ${severity}`);
  return parts.join(" AND ");
}

export function events(page, signal, report) {
  const body = el("tbody");
  const type = el("input", { type: "text", name: "type", placeholder: "instance.*", "aria-label": "Type" });
  const resource = el("input", { type: "text", name: "resource", placeholder: "instances/ID", "aria-label": "Resource" });
  const severity = el(
    "select",
    { name: "severity", "aria-label": "Severity" },
    ["", "INFO", "WARNING", "ERROR"].map((s) => el("option", { value: s }, s || "any severity")),
  );
  const form = el("form", { class: "filters" }, type, resource, severity, el("button", { type: "submit" }, "Apply"));
  page.replaceChildren(
    el("h1", {}, "Events"),
    form,
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["Time", "Type", "Resource", "Message"].map((h) => el("th", { scope: "col" }, h)))),
      body,
    ),
  );
  const add = (event) => {
    body.prepend(eventRow(event));
    while (body.children.length > MAX_EVENTS) body.lastChild.remove();
  };
  let feed = null;
  const start = () => {
    feed?.abort();
    feed = new AbortController();
    const stop = AbortSignal.any([signal, feed.signal]);
    const filter = eventFilter(type.value.trim(), resource.value.trim(), severity.value);
    body.replaceChildren();
    (async () => {
      try {
        const query = new URLSearchParams({ page_size: "50" });
        if (filter) query.set("filter", filter);
        const answer = await call("GET", `/v1/events?${query}`);
        const recent = answer.events ?? [];
        for (const event of [...recent].reverse()) add(event);
        const live = new URLSearchParams();
        if (filter) live.set("filter", filter);
        if (recent.length) live.set("after", recent[0].name);
        report("");
        await watch(`/v1/events:watch?${live}`, add, stop);
      } catch (error) {
        if (!stop.aborted) report(error.message);
      }
    })();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  start();
}

const MAX_TOOL_PAGES = 10;

function toolRow(tool) {
  const schema = el("pre", {}, JSON.stringify(tool.input_schema ?? {}, null, 2));
  return el(
    "tr",
    { "data-tool": tool.name },
    el("td", {}, el("a", { href: `#tool/${tool.name.replace(/^tools\//, "")}` }, el("code", {}, tool.name.replace(/^tools\//, "")))),
    el("td", {}, tool.title ?? ""),
    el(
      "td",
      {},
      tool.description ?? "",
      el("details", {}, el("summary", {}, "Input schema"), schema),
    ),
    el("td", {}, tool.annotations?.read_only ? "read-only" : tool.annotations?.destructive ? "destructive" : ""),
    el("td", {}, tool.allowed ? "yes" : `no: ${tool.refusal ?? ""}`),
  );
}

export function tools(page, signal, report) {
  const list = el("div");
  page.replaceChildren(el("h1", {}, "Tools"), list);
  (async () => {
    try {
      const rows = [];
      let token = "";
      for (let pages = 0; pages < MAX_TOOL_PAGES && !signal.aborted; pages++) {
        const query = new URLSearchParams({ page_size: "100" });
        if (token) query.set("page_token", token);
        const answer = await call("GET", `/v1/tools?${query}`);
        rows.push(...(answer.tools ?? []).map(toolRow));
        token = answer.next_page_token ?? "";
        if (!token) break;
      }
      list.replaceChildren(
        table(["Tool", "Title", "Description", "Kind", "Allowed for you"], rows, "No tools."),
      );
    } catch (error) {
      if (!signal.aborted) report(error.message);
    }
  })();
}
