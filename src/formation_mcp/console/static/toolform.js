// A tool's page: its description, and a form built from its input schema (text, numbers,
// yes/no, choices; anything else as JSON) that calls it and opens the operation it started.
import { ApiError, call, callTool } from "./api.js";
import { el } from "./dom.js";

function typeOf(schema) {
  if (Array.isArray(schema.enum)) return "enum";
  const type = Array.isArray(schema.type) ? (schema.type.length === 1 ? schema.type[0] : "json") : schema.type;
  return ["string", "integer", "number", "boolean"].includes(type) ? type : "json";
}

function field(name, schema, required) {
  const id = `arg-${name}`;
  const kind = typeOf(schema);
  let input;
  if (kind === "enum") {
    input = el("select", { id, name }, required ? [] : el("option", { value: "" }, ""), schema.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
  } else if (kind === "boolean") {
    input = el("input", { id, name, type: "checkbox" });
  } else if (kind === "integer" || kind === "number") {
    input = el("input", { id, name, type: "number", step: kind === "integer" ? "1" : "any", min: schema.minimum, max: schema.maximum });
  } else if (kind === "string" && !(schema.maxLength > 500)) {
    input = el("input", { id, name, type: "text", maxlength: schema.maxLength });
  } else {
    input = el("textarea", { id, name, rows: "4", placeholder: kind === "json" ? "JSON" : "" });
  }
  input.dataset.kind = kind;
  return el(
    "p",
    {},
    el("label", { for: id }, name, required ? el("span", { class: "required", title: "required" }, " *") : ""),
    el("br"),
    input,
    schema.description ? el("small", {}, ` ${schema.description}`) : "",
  );
}

function value(input) {
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (kind === "integer" || kind === "number") return Number(text);
  if (kind === "enum") return JSON.parse(text);
  if (kind === "json") {
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(`${input.name}: not valid JSON`);
    }
  }
  return text;
}

export function toolPage(page, signal, report, name) {
  page.replaceChildren(el("p", {}, el("a", { href: "#tools" }, "← Tools")), el("h1", {}, "Tool ", el("code", {}, name)));
  (async () => {
    try {
      const tool = await call("GET", `/v1/tools/${encodeURIComponent(name)}`);
      const schema = tool.input_schema ?? {};
      const required = new Set(schema.required ?? []);
      const properties = Object.entries(schema.properties ?? {});
      const form = el(
        "form",
        { id: "tool-form" },
        properties.map(([key, property]) => field(key, property, required.has(key))),
        el("button", { type: "submit" }, "Call"),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const args = {};
          for (const input of form.querySelectorAll("[name]")) {
            const v = value(input);
            if (v !== undefined && !(input.dataset.kind === "boolean" && v === false && !required.has(input.name))) args[input.name] = v;
          }
          const operation = await callTool(name, args, "0s");
          location.hash = `#operation/${operation.name.replace(/^operations\//, "")}`;
        } catch (error) {
          report(error.message);
        }
      });
      page.append(
        el("p", {}, tool.description ?? ""),
        tool.allowed === false ? el("p", { class: "sev-WARNING" }, `Not allowed for you: ${tool.refusal ?? ""}`) : "",
        form,
      );
    } catch (error) {
      if (!signal.aborted) report(error.message);
    }
  })();
}
