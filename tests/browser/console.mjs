// The console in headless chromium (Debian's, through playwright-core): sign in with the
// `fmcp console` link, see a running operation's progress bar move, approve a waiting call;
// a second use of the link is refused. Screenshots go to FMCP_ARTIFACTS. Exits non-zero with
// the reason on failure. Inputs: FMCP_LINK, FMCP_RUNNING (operation id), FMCP_WAITING.
import { chromium } from "playwright-core";

const { FMCP_LINK, FMCP_RUNNING, FMCP_WAITING, FMCP_ARTIFACTS } = process.env;
const TIMEOUT_MS = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const violations = [];
  page.on("console", (message) => {
    if (message.type() === "error") violations.push(message.text());
  });
  const signIn = await page.goto(FMCP_LINK);
  check(signIn.ok(), `sign-in answered ${signIn.status()}`);
  check(new URL(page.url()).pathname === "/console/", `landed on ${page.url()}`);

  // Operations: the running call's progress bar moves.
  const row = page.locator(`tr[data-operation="operations/${FMCP_RUNNING}"]`);
  await row.waitFor({ timeout: TIMEOUT_MS });
  const progress = row.locator("progress");
  const first = Number(await progress.getAttribute("value"));
  await page.waitForFunction(
    ([selector, before]) => Number(document.querySelector(selector)?.getAttribute("value")) > before,
    [`tr[data-operation="operations/${FMCP_RUNNING}"] progress`, first],
    { timeout: TIMEOUT_MS },
  );
  await page.screenshot({ path: `${FMCP_ARTIFACTS}/operations.png` });

  // Approvals: the waiting call, approved.
  await page.click('a[href="#approvals"]');
  const waiting = page.locator(`tr[data-operation="operations/${FMCP_WAITING}"]`);
  await waiting.waitFor({ timeout: TIMEOUT_MS });
  await page.screenshot({ path: `${FMCP_ARTIFACTS}/approvals.png` });
  await waiting.getByRole("button", { name: "Approve" }).click();
  await waiting.waitFor({ state: "detached", timeout: TIMEOUT_MS });
  check(await page.locator("#error").isHidden(), await page.locator("#error").textContent());

  // Events: the page loads its feed without an error.
  await page.click('a[href="#events"]');
  await page.locator("main h1", { hasText: "Events" }).waitFor({ timeout: TIMEOUT_MS });
  await page.screenshot({ path: `${FMCP_ARTIFACTS}/events.png` });
  // Tools: the catalogue, with each tool's input schema.
  await page.click('a[href="#tools"]');
  await page.locator('tr[data-tool="tools/test.sleep"]').waitFor({ timeout: TIMEOUT_MS });
  await page.screenshot({ path: `${FMCP_ARTIFACTS}/tools.png` });
  check(violations.length === 0, `console errors: ${violations.join("; ")}`);

  // The link works once.
  const again = await (await browser.newPage()).goto(FMCP_LINK);
  check(again.status() === 401, `a second use answered ${again.status()}`);
  console.log("console: ok");
} finally {
  await browser.close();
}
