// The console's shell: a page per location hash, the error line, sign-out.
import { signOut } from "./api.js";
import { approvals, events, operations, tools } from "./pages.js";

const PAGES = { operations, approvals, events, tools };
const page = document.getElementById("page");
const error = document.getElementById("error");
let current = null;

function report(message) {
  error.hidden = !message;
  error.textContent = message;
}

function show() {
  const name = location.hash.slice(1) in PAGES ? location.hash.slice(1) : "operations";
  current?.abort();
  current = new AbortController();
  for (const link of document.querySelectorAll("header nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  report("");
  PAGES[name](page, current.signal, report);
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
