// analytics_next_test.js: Segment's browser library, @segment/analytics-next
// (pinned in package.json, installed from the lock file), on a page of the
// demo shop in headless Chromium, pointed at `tailor serve` as its API host
// (cdnSettings' integrations['Segment.io'].apiHost and protocol, the
// storefront token as write key; its bundle and chunks served from the
// test's node_modules, so nothing leaves the machine): the page view and a
// click it tracks arrive in tailor's store under analytics.js's own
// anonymous id, as a page_view and a "Product Clicked" event.
//
// Environment as demo_test.js: TAILOR, TAILOR_ROOT, TAILOR_TEST_TMP,
// CHROMIUM, NODE_PATH (playwright-core and @segment/analytics-next).
"use strict";

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const kit = require("./kit");
const { ROOT, TAILOR, TMP, CHROMIUM, CHROMIUM_ARGS, startTailor } = kit;
const KEY = "segment-write-key-storefront-01";
const WAIT_MS = 20000;

const tally = kit.tally();
const check = tally.check;

/* What a shop adds to its pages for analytics.js, pointed at tailor. */
const SNIPPET = `
<script src="/analytics-next/bundles/index.js"></script>
<script>
  var api = location.host + "/v1";
  window.ajsReady = AnalyticsNext.AnalyticsBrowser.load(
    { writeKey: "${KEY}", cdnURL: location.origin,
      cdnSettings: { integrations: { "Segment.io": { apiKey: "${KEY}", apiHost: api, protocol: "http" } } } },
    { integrations: { "Segment.io": { apiHost: api, protocol: "http" } } }
  ).then(function (r) {
    window.analytics = r[0];
    document.addEventListener("click", function (e) {
      var t = e.target.closest("[data-ajs-item]");
      if (t) analytics.track("Product Clicked", { product_id: t.getAttribute("data-ajs-item") });
    });
    return analytics.page("Home");
  });
</script>
<a id="ajs-click" data-ajs-item="hat" href="#">Wool Hat</a>
`;

function prepare(dir) {
  const site = path.join(dir, "site");
  const bundles = path.join(site, "analytics-next", "bundles");
  fs.mkdirSync(bundles, { recursive: true });
  const src = path.join(ROOT, "examples", "storefront");
  for (const f of fs.readdirSync(src)) {
    if (/\.(html|css|js)$/.test(f)) fs.copyFileSync(path.join(src, f), path.join(site, f));
  }
  const page = fs.readFileSync(path.join(site, "index.html"), "utf8");
  fs.writeFileSync(path.join(site, "index.html"), page.replace("</body>", SNIPPET + "</body>"));
  const umd = path.join(path.dirname(require.resolve("@segment/analytics-next/package.json")), "dist", "umd");
  for (const f of fs.readdirSync(umd)) {
    if (f.endsWith(".js")) fs.copyFileSync(path.join(umd, f), path.join(bundles, f));
  }
  fs.writeFileSync(path.join(dir, "tailor.json"), JSON.stringify({
    db: path.join(dir, "shop.db"), strategies: path.join(ROOT, "strategies"),
    server: { listen: "127.0.0.1:0", static_dir: site, tokens: [{ token: KEY, role: "storefront" }] },
  }));
}

function serve(dir) {
  return startTailor(dir, ["--config", path.join(dir, "tailor.json")]);
}

/* The stored events of an anonymous id: [{type, body}]. */
function stored(db, anon) {
  const out = execFileSync("sqlite3", ["-json", db,
    "SELECT type, body FROM events WHERE anon = '" + anon.replace(/'/g, "''") + "' ORDER BY seq"],
  { encoding: "utf8" });
  return out.trim() ? JSON.parse(out).map((r) => ({ type: r.type, body: JSON.parse(r.body) })) : [];
}

async function until(fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  const dir = fs.mkdtempSync(path.join(TMP, "ajs-"));
  prepare(dir);
  const srv = await serve(dir);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    const posts = [];
    page.on("response", (r) => {
      if (r.request().method() === "POST" && /\/v1\/[a-z]$/.test(new URL(r.url()).pathname)) {
        posts.push(new URL(r.url()).pathname + " " + r.status());
      }
    });
    await page.goto("http://127.0.0.1:" + srv.port + "/index.html");
    await page.waitForFunction(() => window.ajsReady, null, { timeout: WAIT_MS });
    await page.evaluate(() => window.ajsReady);
    const anon = await page.evaluate(() => analytics.user().anonymousId());
    check("analytics.js made an anonymous id", typeof anon === "string" && anon.length > 0, anon);
    await page.click("#ajs-click");
    const db = path.join(dir, "shop.db");
    const evs = await until(() => {
      const e = stored(db, anon);
      return e.length >= 2 && posts.length >= 2 ? e : null;
    }, WAIT_MS) || stored(db, anon);
    check("analytics.js posted to tailor and was answered 200",
      posts.length >= 2 && posts.every((p) => p.endsWith(" 200")), posts);
    const pv = evs.find((e) => e.type === "page_view");
    check("the page view arrived as a page_view", pv, evs);
    const click = evs.find((e) => e.type === "other" && e.body.name === "Product Clicked");
    check("the click arrived as Product Clicked with its product",
      click && JSON.stringify(click.body).includes("hat"), evs);
  } finally {
    await browser.close();
    srv.proc.kill("SIGTERM");
  }
}

const deadline = setTimeout(() => {
  console.error("FAIL: the test did not finish in time");
  process.exit(1);
}, 180000);
main().catch((e) => {
  console.error(e);
  tally.failed++;
}).finally(() => {
  clearTimeout(deadline);
  console.log(tally.summary());
  process.exit(tally.failed ? 1 : 0);
});
