// The console's shell: a page per location hash (`#instances`, `#instance/ID`,
// `#operation/ID`, `#tool/NAME`, ...), the error line, sign-out.
import { signOut } from "./api.js";
import { instance, instances } from "./instances.js";
import { operation } from "./operation.js";
import { approvals, events, operations, tools } from "./pages.js";
import { toolPage } from "./toolform.js";

const PAGES = { operations, instances, approvals, events, tools };
const DETAILS = { instance: ["instances", instance], operation: ["operations", operation], tool: ["tools", toolPage] };
const page = document.getElementById("page");
const error = document.getElementById("error");
let current = null;

function report(message) {
  error.hidden = !message;
  error.textContent = message;
}

function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const parameter = decodeURIComponent(rest.join("/"));
  if (name in DETAILS && parameter) return { section: DETAILS[name][0], render: DETAILS[name][1], parameter };
  const section = name in PAGES ? name : "operations";
  return { section, render: PAGES[section], parameter: "" };
}

function show() {
  const { section, render, parameter } = route();
  current?.abort();
  current = new AbortController();
  for (const link of document.querySelectorAll("header nav a")) {
    if (link.getAttribute("href") === `#${section}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  report("");
  render(page, current.signal, report, parameter);
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await signOut();
    current?.abort();
    page.replaceChildren("Signed out. Run `fmcp console` for a new sign-in link.");
  } catch (failure) {
    report(failure.message);
  }
});
window.addEventListener("hashchange", show);
show();
