// Instances: the list (state, ports, URL when exposed, stop/start/delete) and one instance
// (CPU and memory charts from vm.metrics, its recent events, its output with follow).
import { call, quick } from "./api.js";
import { lineChart } from "./charts.js";
import { el, table } from "./dom.js";
import { poll } from "./polling.js";

const LIST_MS = 2000;
const DETAIL_MS = 3000;
const LOG_FOLLOW_MS = 1500;
const MAX_LOG_LINES = 1000;
const WINDOWS = ["5m", "15m", "1h", "6h", "24h"];

async function routesByInstance() {
  try {
    const listed = await quick("network.list");
    const found = new Map();
    for (const route of listed.routes ?? []) {
      found.set(route.instance_id, [...(found.get(route.instance_id) ?? []), route.url]);
    }
    return found;
  } catch {
    return new Map(); // no network tools here, or not for this caller
  }
}

function control(id, operation, report, after) {
  return async () => {
    try {
      await quick("vm.control", { id, operation });
      await after?.();
    } catch (error) {
      report(error.message);
    }
  };
}

function remove(id, name, report, after) {
  return async () => {
    if (!window.confirm(`Delete instance ${name}? Its files go too.`)) return;
    try {
      await quick("vm.delete", { id, force: true });
      await after?.();
    } catch (error) {
      report(error.message);
    }
  };
}

function actions(instance, report, after, afterDelete = after) {
  const id = instance.instance_id;
  const running = instance.state === "running" || instance.state === "creating";
  return [
    running
      ? el("button", { type: "button", onclick: control(id, "stop", report, after) }, "Stop")
      : el("button", { type: "button", onclick: control(id, "start", report, after) }, "Start"),
    el("button", { type: "button", onclick: remove(id, instance.name, report, afterDelete) }, "Delete"),
  ];
}

function links(urls) {
  return (urls ?? []).map((url) => el("a", { href: url, rel: "noreferrer" }, url));
}

function ports(instance) {
  return Object.entries(instance.ports ?? {}).map(([inside, outside]) => `${inside}→${outside}`).join(" ");
}

export function instances(page, signal, report) {
  const list = el("div");
  page.replaceChildren(el("h1", {}, "Instances"), list);
  const load = async () => {
    const [listed, routes] = await Promise.all([quick("vm.list"), routesByInstance()]);
    const rows = (listed.instances ?? []).map((instance) =>
      el(
        "tr",
        { "data-instance": instance.instance_id },
        el("td", {}, el("a", { href: `#instance/${instance.instance_id}` }, instance.name)),
        el("td", { class: "state" }, instance.state),
        el("td", {}, ports(instance)),
        el("td", {}, links(routes.get(instance.instance_id))),
        el("td", {}, actions(instance, report, load)),
      ),
    );
    list.replaceChildren(table(["Name", "State", "Ports", "URL", ""], rows, "No instances."));
  };
  poll(signal, report, load, LIST_MS);
}

function charts(metrics) {
  const series = metrics.series ?? {};
  if (!metrics.samples) return el("p", { class: "empty" }, metrics.message ?? "No samples yet.");
  return el(
    "div",
    { class: "charts" },
    lineChart("CPU", series.cpu_percent ?? [], "% of its vCPUs", 100),
    lineChart("Memory", series.memory_mb ?? [], "MB", metrics.limits?.memory_mb),
  );
}

function eventRows(events) {
  return events.map((event) =>
    el(
      "tr",
      {},
      el("td", {}, event.time ?? ""),
      el("td", { class: `sev-${event.severity}` }, event.type ?? ""),
      el("td", {}, event.message ?? ""),
    ),
  );
}

function logView(id, signal, report) {
  const output = el("pre", { class: "logs", "aria-label": "Output" });
  const follow = el("input", { type: "checkbox", checked: "checked" });
  let cursor = "";
  const append = (lines) => {
    for (const line of lines) output.append(`${line.time ?? ""} ${line.text}\n`);
    while (output.childNodes.length > MAX_LOG_LINES) output.firstChild.remove();
  };
  (async () => {
    try {
      const first = await quick("vm.logs", { id, tail: 100 });
      append(first.lines ?? []);
      cursor = first.next_cursor ?? "";
    } catch (error) {
      report(error.message);
    }
    poll(
      signal,
      report,
      async () => {
        if (!follow.checked || !cursor) return;
        const next = await quick("vm.logs", { id, cursor, tail: 200 });
        append(next.lines ?? []);
        cursor = next.next_cursor || cursor;
      },
      LOG_FOLLOW_MS,
    );
  })();
  return el("section", {}, el("h2", {}, "Output ", el("label", {}, follow, " follow")), output);
}

export function instance(page, signal, report, id) {
  const heading = el("h1", {}, "Instance");
  const summary = el("div");
  const chartBox = el("section", { "aria-label": "Charts" });
  const span = el(
    "select",
    { "aria-label": "Window" },
    WINDOWS.map((w) => el("option", { value: w, selected: w === "15m" ? "selected" : undefined }, w)),
  );
  const events = el("div");
  page.replaceChildren(
    el("p", {}, el("a", { href: "#instances" }, "← Instances")),
    heading,
    summary,
    el("h2", {}, "CPU and memory over the last ", span),
    chartBox,
    el("h2", {}, "Recent events"),
    events,
    logView(id, signal, report),
  );
  const load = async () => {
    const [status, routes] = await Promise.all([quick("vm.status", { id }), routesByInstance()]);
    heading.textContent = `Instance ${status.name}`;
    summary.replaceChildren(
      el(
        "p",
        {},
        "State ",
        el("strong", { class: "state" }, status.state),
        ` · node ${status.node} · ports ${ports(status) || "none"} `,
        links(routes.get(status.instance_id)),
        " ",
        actions(status, report, load, () => {
          location.hash = "#instances";
        }),
      ),
    );
    const asked = span.value;
    const metrics = await quick("vm.metrics", { id, window: asked });
    if (asked === span.value) chartBox.replaceChildren(charts(metrics)); // not a late answer
    const filter = `resource = "instances/${status.instance_id}"`;
    const answer = await call("GET", `/v1/events?${new URLSearchParams({ filter, page_size: "20" })}`);
    events.replaceChildren(table(["Time", "Type", "Message"], eventRows(answer.events ?? []), "No events."));
  };
  span.addEventListener("change", () => load().catch((error) => report(error.message)));
  poll(signal, report, load, DETAIL_MS);
}
