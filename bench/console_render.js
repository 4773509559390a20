// console_render.js BASE TOKEN CHROMIUM: each console page drawn in
// headless chromium, for bench/console_bench.py.  Logs in with TOKEN, then
// loads each page six times and prints {page: median ms} of the last five,
// as the page measures itself (data-render-ms: from asking the admin API
// to the page drawn, charts included).  playwright-core from NODE_PATH.
"use strict";

const { chromium } = require("playwright-core");

const PAGES = ["overview", "revenue", "experiments", "outbox", "audiences", "preview", "strategies"];
const RUNS = 5;

async function main() {
  const [base, token, executablePath] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(120000);
    await page.goto(base + "/admin/");
    await page.waitForSelector("#login:not([hidden])");
    await page.fill("#token", token);
    await page.click("#login button");
    await page.waitForSelector("body[data-ready=overview]");
    const out = {};
    for (const name of PAGES) {
      const has = await page.$("#nav a[href='#" + name + "']");
      if (!has) continue; // a build without the page
      const ms = [];
      for (let i = 0; i <= RUNS; i++) {
        await page.goto(base + "/admin/?run=" + i + "#" + name);
        await page.waitForSelector("body[data-ready=" + name + "]");
        if (i) ms.push(Number(await page.getAttribute("body", "data-render-ms")));
      }
      ms.sort((a, b) => a - b);
      out[name] = ms[Math.floor(ms.length / 2)];
    }
    process.stdout.write(JSON.stringify(out));
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
