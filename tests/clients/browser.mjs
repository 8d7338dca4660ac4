// Opens one page in Debian's headless Chromium through playwright-core and reports what the page
// shows, as JSON lines on stdout. Driven by tests/api/clients.rs.
//
//   node browser.mjs URL [--wait-for-message]
//
// 1. Loads URL in a fresh profile and waits until the page says it is ready (its fetch settled
//    and its WebSocket opened or failed); prints {"stage": "ready", ...the page's report}.
// 2. With --wait-for-message, waits until the page shows a message received over the WebSocket
//    (the test posts one after step 1); then prints {"stage": "done", ...} and exits 0.
// Any failure prints {"stage": "error", "error": ...} and exits 1. The browser is closed on every
// path, and the whole run is bounded so that a lost parent never leaves Chromium behind.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, ...flags] = process.argv.slice(2);
const waitForMessage = flags.includes("--wait-for-message");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 15_000;

const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
const consoleLines = [];
const profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
// Also on SIGTERM from the test's guard, after playwright has closed the browser.
process.on("exit", () => rmSync(profile, { recursive: true, force: true }));
let context;

async function close() {
  if (context) {
    await context.close().catch(() => {});
    context = undefined;
  }
  rmSync(profile, { recursive: true, force: true });
}

// Whatever happens, never outlive the test by much.
const deadline = setTimeout(async () => {
  print({ stage: "error", error: "browser.mjs: overall time limit reached", console: consoleLines });
  await close();
  process.exit(1);
}, 3 * STEP_MS);

// What the page wrote into its DOM: read back from the document, not from the page's variables.
const report = (page) =>
  page.evaluate(() => ({
    origin: location.origin,
    fetch: document.getElementById("fetch").textContent,
    total: document.getElementById("total").textContent,
    conversations: [...document.querySelectorAll("#conversations li")].map((li) => li.textContent),
    socket: document.getElementById("socket").textContent,
    messages: [...document.querySelectorAll("#messages li")].map((li) => li.textContent),
  }));

try {
  if (!url) throw new Error("usage: node browser.mjs URL [--wait-for-message]");
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    // Without the background-networking flags Chromium keeps calling out to Google's hosts,
    // which this machine's closed network refuses.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => consoleLines.push(message.text()));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
  await page.goto(url, { timeout: STEP_MS });
  await page.waitForSelector("body[data-ready]", { timeout: STEP_MS });
  print({ stage: "ready", ...(await report(page)), console: consoleLines });
  if (waitForMessage) {
    await page.waitForSelector("#messages li", { timeout: STEP_MS });
    print({ stage: "done", ...(await report(page)), console: consoleLines });
  }
  await close();
  clearTimeout(deadline);
} catch (error) {
  print({ stage: "error", error: String(error), console: consoleLines });
  await close();
  clearTimeout(deadline);
  process.exitCode = 1;
}
