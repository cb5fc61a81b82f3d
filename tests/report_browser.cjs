// Opens a cmcl report from disk in headless Chromium (Playwright), reads back the numbers
// the summary page shows and what the sample page's filters do, and saves screenshots.
// Usage: node report_browser.cjs REPORT_DIR SCREENSHOT_DIR
// Prints one JSON object; tests/report.rs checks it against the manifest.
"use strict";
const path = require("path");
const modules = process.env.CMCL_BROWSER_MODULES;
const { chromium } = require(path.join(modules, "playwright-core"));

async function main() {
  const [reportDir, shots] = process.argv.slice(2);
  const userDataDir = require("fs").mkdtempSync(path.join(require("os").tmpdir(), "cmcl-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CMCL_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const requests = [];
  const errors = [];
  context.on("request", (r) => requests.push(r.url()));
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  const url = (name) => "file://" + path.resolve(reportDir, name);
  await page.goto(url("index.html"));
  const summary = await page.$$eval("[data-check]", (nodes) =>
    Object.fromEntries(nodes.map((n) => [n.dataset.check, n.textContent.trim()])));
  const plots = await page.locator("figure svg").count();
  await page.screenshot({ path: path.join(shots, "summary.png"), fullPage: false });

  await page.goto(url("samples.html"));
  const count = async () => Number(await page.locator("#shown").getAttribute("data-count"));
  const rendered = await page.locator("article").count();
  const brokenImages = await page.$$eval("img", (imgs) =>
    imgs.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.getAttribute("src")));
  const before = await count();
  const kinds = await page.$$eval("#kind option", (os) => os.map((o) => o.value).filter(Boolean));
  // The kind that the fewest sampled pairs have, so choosing it must hide some.
  let filter = null;
  for (const kind of kinds) {
    await page.selectOption("#kind", kind);
    const n = await count();
    const visibleArticles = await page.locator("article:visible").count();
    if (filter === null || n < filter.visible) filter = { kind, visible: n, visibleArticles };
  }
  await page.selectOption("#kind", filter ? filter.kind : "");
  await page.screenshot({ path: path.join(shots, "samples.png"), fullPage: false });
  await page.selectOption("#kind", "");
  await page.fill("#min", "1000");
  const aboveEveryScore = await count();
  await page.fill("#min", "");
  const firstCaption = await page.locator("article .caption").first().textContent();
  await page.fill("#words", firstCaption);
  const byWords = await count();
  await page.fill("#words", "");
  const after = await count();

  await context.close();
  const external = requests.filter((u) => !u.startsWith("file://") && !u.startsWith("data:"));
  console.log(JSON.stringify({
    summary, plots, rendered, brokenImages, before, kinds, filter, aboveEveryScore, byWords, after, external, errors,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
