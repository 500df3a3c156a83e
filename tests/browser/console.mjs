// The console in headless chromium (Debian's, through playwright-core), against a server on
// PostgreSQL and RabbitMQ with a separate worker: sign in with the `fmcp console` link (opening
// it spends nothing; the button does, once), a running call's progress bar moves and its log
// lines stream on its page, a held call approved and another denied with a comment, an
// instance's charts after some samples, its events and output, a tool called from its form,
// the events filter, a forged request refused by the CSRF check, and no horizontal scrolling
// on a phone-width screen. Screenshots go to FMCP_ARTIFACTS. Exits non-zero with the reason.
// Inputs: FMCP_LINK, FMCP_RUNNING, FMCP_WAITING, FMCP_DENIED (operation ids), FMCP_INSTANCE.
import { chromium } from "playwright-core";

const { FMCP_LINK, FMCP_RUNNING, FMCP_WAITING, FMCP_DENIED, FMCP_INSTANCE, FMCP_ARTIFACTS } = process.env;
const TIMEOUT_MS = 20000;
const PHONE = { width: 390, height: 844 };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: `${FMCP_ARTIFACTS}/${name}.png`, fullPage: true });
}

async function noErrorShown(page) {
  const error = page.locator("#error");
  check(await error.isHidden(), `the console shows an error: ${await error.textContent()}`);
}

async function fitsTheScreen(page, what) {
  const [scrollWidth, innerWidth] = await page.evaluate(() => [
    document.scrollingElement.scrollWidth,
    window.innerWidth,
  ]);
  check(scrollWidth <= innerWidth, `${what} scrolls sideways at ${innerWidth}px (${scrollWidth}px wide)`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);
  const violations = [];
  page.on("console", (message) => {
    if (message.type() === "error") violations.push(message.text());
  });

  // Sign in: a link scanner's GET first (spends nothing), then the person presses the button.
  const scanned = await context.request.get(FMCP_LINK);
  check(scanned.status() === 200, `a GET of the link answered ${scanned.status()}`);
  await page.goto(FMCP_LINK);
  await shot(page, "signin");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/console/");

  // Operations: the running call's progress bar moves.
  const row = page.locator(`tr[data-operation="operations/${FMCP_RUNNING}"]`);
  const selector = `tr[data-operation="operations/${FMCP_RUNNING}"] progress`;
  await row.waitFor();
  const first = Number(await row.locator("progress").getAttribute("value"));
  await page.waitForFunction(
    ([css, before]) => Number(document.querySelector(css)?.getAttribute("value")) > before,
    [selector, first],
  );
  await shot(page, "operations");

  // A forged request (a wrong CSRF token) is refused and changes nothing (the browser logs
  // the refusal as an error: expected here, so not counted).
  const logged = violations.length;
  const forged = await page.evaluate(async (id) => {
    // Without the CSRF header, and with a wrong one: the session cookie goes along either way.
    const statuses = [];
    for (const headers of [{}, { "x-fmcp-csrf": "forged" }]) {
      const init = { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: "{}" };
      statuses.push((await fetch(`/console/api/v1/operations/${id}:cancel`, init)).status);
    }
    const csrf = document.cookie.split("; ").find((c) => c.startsWith("fmcp_csrf="))?.split("=")[1] ?? "";
    const now = await (await fetch(`/console/api/v1/operations/${id}`, { headers: { "x-fmcp-csrf": csrf } })).json();
    return { statuses, cancelRequested: Boolean(now.metadata?.cancel_requested) };
  }, FMCP_RUNNING);
  check(
    forged.statuses.every((status) => status === 403) && !forged.cancelRequested,
    `a forged cancel: ${JSON.stringify(forged)}`,
  );
  violations.splice(logged);

  // Its page: log lines stream in and the bar keeps moving.
  await row.locator("a").click();
  await page.waitForURL(`**/console/#operation/${FMCP_RUNNING}`);
  const log = page.locator("pre.logs");
  await log.filter({ hasText: /step \d+ of 100/ }).waitFor();
  const before = (await log.textContent()).split("\n").length;
  await page.waitForFunction(
    (count) => document.querySelector("pre.logs").textContent.split("\n").length > count,
    before,
  );
  await shot(page, "operation");

  // Approvals: one held call approved, the other denied with a comment.
  await page.click('a[href="#approvals"]');
  const waiting = page.locator(`tr[data-operation="operations/${FMCP_WAITING}"]`);
  const denied = page.locator(`tr[data-operation="operations/${FMCP_DENIED}"]`);
  await waiting.waitFor();
  await denied.waitFor();
  await shot(page, "approvals");
  await waiting.getByRole("button", { name: "Approve" }).click();
  await waiting.waitFor({ state: "detached" });
  await denied.getByLabel("Comment").fill("not today");
  await denied.getByRole("button", { name: "Deny" }).click();
  await denied.waitFor({ state: "detached" });
  await noErrorShown(page);

  // Instances: the list, then the instance with its charts, events and output.
  await page.click('a[href="#instances"]');
  const instanceRow = page.locator(`tr[data-instance="${FMCP_INSTANCE}"]`);
  await instanceRow.waitFor();
  check((await instanceRow.locator(".state").textContent()) === "running", "the instance runs");
  await shot(page, "instances");
  await instanceRow.locator("a").first().click();
  await page.waitForFunction(
    () => [...document.querySelectorAll(".chart svg")].every((svg) => Number(svg.dataset.points) >= 2) &&
      document.querySelectorAll(".chart svg").length === 2,
  );
  check((await page.locator(".chart polyline").count()) >= 2, "each chart draws a line");
  await page.getByLabel("Window").selectOption("1h");
  await page.locator(".chart svg").first().waitFor();
  await page.locator("main table td", { hasText: "instance." }).first().waitFor();
  await page.locator("pre.logs", { hasText: "listening on" }).waitFor();
  await shot(page, "instance");

  // Tools: the catalogue, then test.echo called from its form: its operation's result.
  await page.click('a[href="#tools"]');
  await page.locator('tr[data-tool="tools/test.sleep"]').waitFor();
  await shot(page, "tools");
  await page.locator('tr[data-tool="tools/test.echo"] a').click();
  await page.locator("#tool-form").waitFor();
  await page.getByLabel("text").fill("hi");
  await page.getByLabel("count").fill("2");
  await shot(page, "tool");
  await page.getByRole("button", { name: "Call" }).click();
  await page.locator("pre.result", { hasText: '"echo": "hihi"' }).waitFor();
  await noErrorShown(page);

  // Events: filtered to the instance's own.
  await page.click('a[href="#events"]');
  await page.getByLabel("Type").fill("instance.*");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.locator("main tbody tr").first().waitFor();
  const types = await page.locator("main tbody tr td:nth-child(2)").allTextContents();
  check(types.length > 0 && types.every((t) => t.startsWith("instance.")), `filtered events: ${types}`);
  await shot(page, "events");

  // A phone-width screen: nothing scrolls sideways.
  await page.setViewportSize(PHONE);
  for (const hash of ["#operations", "#instances", "#tools", `#instance/${FMCP_INSTANCE}`]) {
    await page.evaluate((h) => (location.hash = h), hash);
    await page.locator("main h1").waitFor();
    await page.locator("main table, main .empty, main .charts").first().waitFor();
    await fitsTheScreen(page, hash);
  }
  await shot(page, "phone-instance");
  check(violations.length === 0, `console errors: ${violations.join("; ")}`);

  // The link worked once.
  const again = await browser.newPage();
  await again.goto(FMCP_LINK);
  const refusal = again.waitForResponse((response) => response.request().method() === "POST");
  await again.getByRole("button", { name: "Sign in" }).click();
  check((await refusal).status() === 401, "a second use of the link was refused");
  console.log("console: ok");
} finally {
  await browser.close();
}
