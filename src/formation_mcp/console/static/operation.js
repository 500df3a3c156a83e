// One operation, live: state, progress, stage and its log lines as they come (WatchOperation's
// NDJSON stream, resumed after the last change when it drops), then its result or error.
import { call, watch } from "./api.js";
import { el } from "./dom.js";

const STATES_DONE = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const MAX_LOG_LINES = 2000;

export function operation(page, signal, report, id) {
  const state = el("strong", { class: "state" }, "…");
  const progress = el("progress", { max: "100", value: "0", "aria-label": "Progress" });
  const percent = el("span", {}, "0%");
  const stage = el("span");
  const logs = el("pre", { class: "logs", "aria-label": "Log" });
  const outcome = el("div");
  const cancel = el("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", async () => {
    try {
      await call("POST", `/v1/operations/${id}:cancel`, {});
    } catch (error) {
      report(error.message);
    }
  });
  page.replaceChildren(
    el("p", {}, el("a", { href: "#operations" }, "← Operations")),
    el("h1", {}, "Operation ", el("code", {}, id)),
    el("p", { class: "tool" }),
    el("p", {}, "State ", state, " ", progress, " ", percent, " ", stage, " ", cancel),
    el("h2", {}, "Log"),
    logs,
    outcome,
  );
  let last = 0;
  const show = (snapshot) => {
    const meta = snapshot.metadata ?? {};
    const sequence = Number(meta.sequence ?? 0);
    if (sequence && sequence <= last) return; // seen before the stream was resumed
    last = sequence || last;
    page.querySelector(".tool").textContent = `${meta.tool ?? ""} by ${meta.owner ?? ""}`;
    state.textContent = meta.state ?? "";
    progress.value = meta.progress_percent ?? 0;
    percent.textContent = `${meta.progress_percent ?? 0}%`;
    stage.textContent = meta.stage || meta.status_message || "";
    for (const line of meta.logs ?? []) logs.append(`${line.text}\n`);
    while (logs.childNodes.length > MAX_LOG_LINES) logs.firstChild.remove();
    cancel.hidden = STATES_DONE.has(meta.state);
    if (snapshot.done) {
      const body = snapshot.error ?? snapshot.response?.output ?? {};
      outcome.replaceChildren(
        el("h2", {}, snapshot.error ? "Error" : "Result"),
        el("pre", { class: snapshot.error ? "error" : "result" }, JSON.stringify(body, null, 2)),
      );
    }
    return snapshot.done;
  };
  (async () => {
    let done = false;
    while (!done && !signal.aborted) {
      try {
        await watch(`/v1/operations/${id}:watch${last ? `?after_sequence=${last}` : ""}`, (snapshot) => {
          done = show(snapshot) || done;
        }, signal);
        report("");
      } catch (error) {
        if (signal.aborted) return;
        report(error.message);
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  })();
}
