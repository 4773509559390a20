// console_test.js: the merchant console (/admin) in a real browser.  Loads
// the demo shop's generated data into a fresh store, starts `tailor serve`,
// sends simulated traffic (recommendation clicks, popup clicks, email
// clicks, orders after them and orders after nothing, carts that schedule
// an abandoned-cart email and orders that cancel it), then drives Debian's
// chromium through playwright-core over each page:
//
//   - the login form opens a session; the cookie is HttpOnly, SameSite=Strict
//   - overview: the store's figures and the hour's events equal the test's
//     count; the uPlot chart's canvas is drawn
//   - revenue: orders, revenue, attributed, rest and the share of sessions
//     that saw personalization equal those computed here from the events
//     (last click within the window); the bar chart is drawn
//   - experiments: the same numbers as the admin API's report (the text
//     report's source)
//   - outbox: counts by state; a message's preview; retry and purge act
//   - visitor preview: a customer's decisions with explanations
//   - strategies: every file listed; the check runs
//   - refused: no token, a storefront token (Bearer and login), an expired
//     cookie, a change without the CSRF token, and one from another origin
//
// Screenshots of each page go to SHOTS; each page's render time (from the
// request to a drawn page, data-render-ms) is printed.  Environment as
// demo_test.js.
"use strict";

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const kit = require("./kit");
const { ROOT, TAILOR, TMP, CHROMIUM, CHROMIUM_ARGS, startTailor } = kit;
const SHOTS = process.env.SHOTS || path.join(TMP, "screenshots");
const TEST_DEADLINE_MS = 240000;
const WAIT_MS = 20000;
const ADMIN = "console-admin-token-0123456789";
const METRICS = "console-metrics-token-0123456789";
const STOREFRONT = "console-storefront-token-012345";
const HOUR = 3600000;

const tally = kit.tally();
const check = tally.check;
function near(a, b) { return Math.abs(Number(a) - Number(b)) < 1e-6 * Math.max(1, Math.abs(b)); }

// The smtp plugin with the shipped templates renders the outbox preview;
// delivery is off (deliver_interval_ms 0), so nothing is ever sent to it.
const SMTP_PLUGIN = {
  path: path.join(path.dirname(TAILOR), "plugins", "smtp.so"),
  config: { url: "smtp://127.0.0.1:9", from: "Trail Co <shop@trail.example>",
            templates: path.join(ROOT, "plugins", "smtp", "templates"),
            vars: { shop: { name: "Trail Co", url: "https://trail.example", currency: "EUR" } } },
};

function config(dir, extra) {
  fs.writeFileSync(path.join(dir, "tailor.json"), JSON.stringify({
    db: "shop.db",
    plugins: [SMTP_PLUGIN],
    server: Object.assign({
      listen: "127.0.0.1:0", deliver_interval_ms: 0,
      tokens: [{ token: ADMIN, role: "admin" }, { token: METRICS, role: "metrics" },
               { token: STOREFRONT, role: "storefront" }],
    }, extra || {}),
  }));
}

/* Waits until the page's note begins with `prefix` (an action's answer). */
function noteSays(page, prefix) {
  return page.waitForFunction((p) => ((document.getElementById("note") || {}).textContent || "").startsWith(p),
    prefix, { timeout: WAIT_MS }).catch(() => {});
}

function serve(dir) {
  return startTailor(dir, ["--config", "tailor.json", "--strategies",
    path.join(ROOT, "strategies")]);
}

async function stop(server) {
  if (!server || server.proc.exitCode !== null) return;
  const exited = new Promise((r) => server.proc.once("exit", r));
  server.proc.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, WAIT_MS))]);
  if (server.proc.exitCode === null) server.proc.kill("SIGKILL");
  check("tailor serve stops cleanly on SIGTERM", server.proc.exitCode === 0,
    "exit " + server.proc.exitCode + "\n" + fs.readFileSync(server.log, "utf8"));
}

async function http(base, method, p, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (opts.token) headers.Authorization = "Bearer " + opts.token;
  let body = opts.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const r = await fetch(base + p, { method, headers, body, redirect: "manual" });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

/*
** Simulated traffic, with what the console must show computed from it.
** Each person has one touch (or none) and orders after it; the orders'
** revenues are distinct so a wrong attribution shows.
*/
function traffic(now) {
  const evs = [];
  const expect = { attributed: { orders: 0, revenue: 0 }, groups: {} };
  let n = 0;
  function order(who, ts, revenue, touch) {
    n++;
    evs.push(Object.assign({ type: "purchase", order_id: "sim-o" + n, ts, revenue, currency: "EUR",
      items: [{ id: "sim-item", price: revenue, quantity: 1 }] }, who));
    if (touch && ts - touch.ts <= 24 * HOUR) {
      expect.attributed.orders++;
      expect.attributed.revenue += revenue;
      const k = touch.source + "|" + touch.strategy + "|" + touch.widget;
      const g = expect.groups[k] = expect.groups[k] || { orders: 0, revenue: 0 };
      g.orders++;
      g.revenue += revenue;
    }
  }
  for (let i = 0; i < 6; i++) { // recommendation clicks, then orders
    const who = { anon: "sim-rec-" + i, session: "sim-rec-s" + i };
    const widget = i % 2 ? "product" : "home", ts = now - 5 * HOUR + i * 1000;
    evs.push(Object.assign({ type: "rec_shown", name: widget, ts: ts - 500, items: [{ id: "sim-item" }],
      props: { strategy: "recommend.lua" } }, who));
    evs.push(Object.assign({ type: "rec_clicked", name: widget, item: "sim-item", ts,
      props: { strategy: "recommend.lua" } }, who));
    order(who, ts + 60000, 10 + i, { ts, source: "recommendation", strategy: "recommend.lua", widget });
  }
  for (let i = 0; i < 4; i++) { // popup clicks, then orders
    const who = { anon: "sim-pop-" + i, session: "sim-pop-s" + i }, ts = now - 4 * HOUR + i * 1000;
    evs.push(Object.assign({ type: "popup_shown", name: "free_shipping", ts: ts - 500,
      props: { strategy: "popup.lua" } }, who));
    evs.push(Object.assign({ type: "popup_clicked", name: "free_shipping", ts,
      props: { strategy: "popup.lua" } }, who));
    order(who, ts + 120000, 100 + i, { ts, source: "popup", strategy: "popup.lua", widget: "free_shipping" });
  }
  for (let i = 0; i < 3; i++) { // email clicks, then orders; the last one too late
    const who = { customer: "sim-mail-" + i, session: "sim-mail-s" + i }, ts = now - 40 * HOUR + i * 1000;
    evs.push(Object.assign({ type: "email_clicked", name: "win_back", ts }, who));
    order(who, ts + (i === 2 ? 30 * HOUR : HOUR), 1000 + i,
      { ts, source: "email", strategy: "-", widget: "win_back" });
  }
  for (let i = 0; i < 2; i++) { // orders after nothing
    const who = { anon: "sim-none-" + i, session: "sim-none-s" + i };
    order(who, now - 2 * HOUR + i, 5000 + i, null);
  }
  return { evs, expect };
}

/*
** The recency audiences at `now` from the events, as the index keeps them
** (index.h): a person is a customer id or an anonymous id (folded into the
** customer when an event names both); last seen, last order and cart as
** events arrive; then buyers (ordered within 14 days), else cart
** abandoners (seen within 2 days, cart not empty), else visitors by when
** last seen: (0,2], (2,7], (7,14] days.
*/
function audiencesOf(events, now) {
  const DAY = 86400000, people = new Map(), into = new Map();
  function get(k) {
    if (!people.has(k)) people.set(k, { seen: 0, order: 0, cart: new Set(), customer: k.startsWith("c:") });
    return people.get(k);
  }
  for (const e of events) {
    if (/^(item_upsert|item_delete|customer_upsert)$/.test(e.type)) continue;
    const ts = typeof e.ts === "string" ? Date.parse(e.ts) : e.ts;
    let k = e.customer ? "c:" + e.customer : e.anon ? "a:" + (into.get(e.anon) ? null : e.anon) : null;
    if (e.anon && into.get(e.anon)) k = into.get(e.anon);
    if (e.customer && e.anon && !into.has(e.anon)) { // a login folds the visitor in
      const a = people.get("a:" + e.anon), c = get("c:" + e.customer);
      if (a) {
        c.seen = Math.max(c.seen, a.seen);
        c.order = Math.max(c.order, a.order);
        a.cart.forEach((i) => c.cart.add(i));
        people.delete("a:" + e.anon);
      }
      into.set(e.anon, "c:" + e.customer);
    }
    if (!k) continue;
    const p = get(k);
    p.seen = Math.max(p.seen, ts);
    const lines = e.items ? e.items.map((l) => l.id) : e.item ? [e.item] : [];
    if (e.type === "add_to_cart") lines.forEach((i) => p.cart.add(i));
    if (e.type === "remove_from_cart") lines.forEach((i) => p.cart.delete(i));
    if (e.type === "purchase") {
      p.order = Math.max(p.order, ts);
      lines.forEach((i) => p.cart.delete(i));
    }
  }
  const out = {};
  for (const p of people.values()) {
    const seen = now - p.seen;
    let key = null;
    if (p.order && now - p.order <= 14 * DAY) key = "buyers/14";
    else if (p.cart.size && seen <= 2 * DAY) key = "cart_abandoners/2";
    else key = [2, 7, 14].filter((d) => seen <= d * DAY).map((d) => "visitors/" + d)[0] || null;
    if (key) out[key] = (out[key] || 0) + 1;
  }
  return out;
}

/* Orders, revenue and sessions of the demo's events (NDJSON). */
function demoFigures(file) {
  const out = { orders: 0, revenue: 0, sessions: new Set() };
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const e = JSON.parse(line);
    if (e.session) out.sessions.add(e.session);
    if (e.type !== "purchase") continue;
    out.orders++;
    out.revenue += e.revenue !== undefined ? e.revenue
      : (e.items || []).reduce((s, l) => s + (l.price || 0) * (l.quantity === undefined ? 1 : l.quantity), 0);
  }
  return out;
}

async function canvasDrawn(page, selector) {
  return page.$eval(selector, (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
    return false;
  }).catch(() => false);
}

async function card(page, key) {
  return page.getAttribute("[data-k=" + key + "]", "data-v");
}

const times = {};
async function open(page, base, name) {
  await page.goto(base + "/admin/#" + name);
  await page.waitForSelector("body[data-ready=" + name + "]", { timeout: WAIT_MS });
  times[name] = Number(await page.getAttribute("body", "data-render-ms"));
  await page.screenshot({ path: path.join(SHOTS, "console-" + name + ".png"), fullPage: true });
}

async function run(dir, server, sim, demo, eventsFile) {
  const base = "http://127.0.0.1:" + server.port;
  // Refusals first: no token, storefront token, storefront login.
  check("the API refuses no token", (await http(base, "GET", "/admin/api/overview")).status === 401);
  check("the API refuses a storefront token",
    (await http(base, "GET", "/admin/api/overview", { token: STOREFRONT })).status === 403);
  check("login refuses a storefront token",
    (await http(base, "POST", "/admin/login", { body: "token=" + STOREFRONT })).status === 403);
  check("login refuses an unknown token",
    (await http(base, "POST", "/admin/login", { body: "token=nope-nope-nope-nope" })).status === 401);
  const metricsView = await http(base, "GET", "/admin/api/outbox", { token: METRICS });
  check("a metrics token reads the outbox without variables",
    metricsView.status === 200 && metricsView.json.rows.every((r) => r.vars === undefined));
  check("a metrics token may not retry",
    (await http(base, "POST", "/admin/api/outbox/retry", { token: METRICS, body: {} })).status === 403);

  // A cookie session outside the browser, for the CSRF and origin checks.
  const login = await http(base, "POST", "/admin/login", { body: "token=" + encodeURIComponent(ADMIN) });
  const setCookie = login.headers.get("set-cookie") || "";
  check("login sets an HttpOnly, SameSite=Strict cookie",
    login.status === 200 && /HttpOnly/.test(setCookie) && /SameSite=Strict/.test(setCookie), setCookie);
  const cookie = setCookie.split(";")[0], csrf = login.json && login.json.csrf;
  const before = (await http(base, "GET", "/admin/api/outbox", { token: ADMIN })).json.totals;
  check("a change without the CSRF token is refused",
    (await http(base, "POST", "/admin/api/outbox/purge", { headers: { Cookie: cookie }, body: { state: "cancelled" } })).status === 403);
  check("a change from another origin is refused",
    (await http(base, "POST", "/admin/api/outbox/purge", { headers: { Cookie: cookie, "X-CSRF-Token": csrf,
      Origin: "http://shop.example" }, body: { state: "cancelled" } })).status === 403);
  const after = (await http(base, "GET", "/admin/api/outbox", { token: ADMIN })).json.totals;
  check("refused changes changed nothing", JSON.stringify(before) === JSON.stringify(after));
  check("a read with the cookie works",
    (await http(base, "GET", "/admin/api/session", { headers: { Cookie: cookie } })).status === 200);

  fs.mkdirSync(SHOTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(TMP, "chromium-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 900 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on("pageerror", (e) => check("no script error", false, e.message));
    await page.goto(base + "/admin/");
    await page.waitForSelector("#login:not([hidden])");
    await page.screenshot({ path: path.join(SHOTS, "console-login.png") });
    await page.fill("#token", ADMIN);
    await page.click("#login button");
    await page.waitForSelector("body[data-ready=overview]");
    const jar = await context.cookies(base + "/admin/");
    const sess = jar.find((c) => c.name === "tailor_session");
    check("the browser holds an HttpOnly, SameSite=Strict session cookie",
      sess && sess.httpOnly && sess.sameSite === "Strict");

    // Overview.
    await open(page, base, "overview");
    const stats = (await http(base, "GET", "/v1/stats", { token: ADMIN })).json;
    check("overview: events in the store", Number(await card(page, "events_total")) === stats.events_total,
      await card(page, "events_total") + " vs " + stats.events_total);
    check("overview: customers", Number(await card(page, "customers")) === stats.customers);
    const hourEvents = Number(await page.getAttribute("[data-k=hour]", "data-events"));
    check("overview: the hour's events count the simulated traffic", hourEvents === sim.evs.length + sim.profiles,
      hourEvents + " vs " + (sim.evs.length + sim.profiles));
    check("overview: the rate chart is drawn", await canvasDrawn(page, "#rate-chart canvas"));

    // Revenue.
    await open(page, base, "revenue");
    const orders = demo.orders + sim.evs.filter((e) => e.type === "purchase").length;
    const revenue = demo.revenue + sim.evs.filter((e) => e.type === "purchase").reduce((s, e) => s + e.revenue, 0);
    check("revenue: orders", Number(await card(page, "orders")) === orders, await card(page, "orders") + " vs " + orders);
    check("revenue: revenue", near(await card(page, "revenue"), revenue), await card(page, "revenue") + " vs " + revenue);
    check("revenue: attributed orders", Number(await card(page, "attributed_orders")) === sim.expect.attributed.orders,
      await card(page, "attributed_orders") + " vs " + sim.expect.attributed.orders);
    check("revenue: attributed revenue", near(await card(page, "attributed_revenue"), sim.expect.attributed.revenue));
    check("revenue: the rest", near(await card(page, "rest_revenue"), revenue - sim.expect.attributed.revenue));
    const sessions = new Set(demo.sessions);
    sim.evs.forEach((e) => { if (e.session) sessions.add(e.session); });
    const seen = new Set(sim.evs.filter((e) => /_shown|_clicked/.test(e.type)).map((e) => e.session));
    check("revenue: share of sessions that saw personalization",
      near(await card(page, "sessions_share"), seen.size / sessions.size),
      await card(page, "sessions_share") + " vs " + seen.size / sessions.size);
    const rows = await page.$$eval("table tr", (trs) => trs.slice(1).map((tr) =>
      Array.from(tr.children).map((td) => td.textContent)));
    for (const k of Object.keys(sim.expect.groups)) {
      const [source, strategy, widget] = k.split("|"), g = sim.expect.groups[k];
      const row = rows.find((r) => r[0] === source && r[1] === strategy && r[2] === widget);
      check("revenue: the row of " + k, row && Number(row[5]) === g.orders && near(row[6], g.revenue.toFixed(2)),
        JSON.stringify(row) + " vs " + JSON.stringify(g));
    }
    check("revenue: the bar chart is drawn", await canvasDrawn(page, "canvas.bars"));
    // A window the server does not take (half an hour) is not shown as the
    // one counted with: the page says the window the figures are for.
    await page.fill("#window", "0.5");
    await page.click("text=Apply"); // show() clears data-ready at once
    await page.waitForSelector("body[data-ready=revenue]");
    const used = (await http(base, "GET", "/admin/api/revenue?window_hours=0.5", { token: ADMIN })).json;
    check("revenue: the window shown is the one the figures are for",
      Number(await page.inputValue("#window")) === used.window_ms / HOUR,
      (await page.inputValue("#window")) + " vs " + used.window_ms / HOUR);
    await page.fill("#window", "24");
    await page.click("text=Apply");
    await page.waitForSelector("body[data-ready=revenue]");

    // Experiments: the same numbers as the report.
    await open(page, base, "experiments");
    const report = (await http(base, "GET", "/admin/api/experiments", { token: ADMIN })).json;
    const tables = await page.$$("table");
    check("experiments: a table per experiment", tables.length === report.length, tables.length + " vs " + report.length);
    // The window of `tailor report experiments` (7 days), so the two agree.
    for (const ex of report) check("experiments: the text report's window", ex.window_days === 7, String(ex.window_days));
    for (const ex of report) {
      for (const v of ex.variants) {
        const row = await page.$$eval("table tr", (trs, name) => {
          const tr = trs.find((t) => t.children[0] && t.children[0].textContent === name);
          return tr ? Array.from(tr.children).map((td) => td.textContent) : null;
        }, v.variant);
        check("experiments: exposures of " + ex.experiment + "/" + v.variant, row && Number(row[1]) === v.exposures);
      }
    }
    if (report.length) check("experiments: the intervals are drawn", await canvasDrawn(page, "canvas.ci"));

    // Outbox: counts, a preview, retry, purge.
    await open(page, base, "outbox");
    const box = (await http(base, "GET", "/admin/api/outbox", { token: ADMIN })).json;
    for (const s of ["scheduled", "cancelled"])
      check("outbox: " + s, Number(await card(page, "outbox_" + s)) === (box.totals[s] || 0));
    check("outbox: the simulated carts scheduled emails and orders cancelled one",
      (box.totals.scheduled || 0) >= 1 && (box.totals.cancelled || 0) >= 1, JSON.stringify(box.totals));
    // The preview of the cart email still to go: rendered by the smtp
    // plugin from the shipped template, as delivery would hand it now.
    const waiting = box.rows.find((r) => r.key.startsWith("abandoned_cart:sim-cart-1:"));
    check("outbox: the second cart's email is scheduled", waiting && waiting.state === "scheduled",
      JSON.stringify(box.rows.map((r) => [r.key, r.state])));
    const shown = (await http(base, "GET", "/admin/api/outbox/message?key=" + encodeURIComponent(waiting.key),
      { token: ADMIN })).json;
    const parts = (shown.rendered || {}).parts || {};
    check("outbox: the API renders the email's subject from the template",
      parts.subject === "Still thinking about Trail Runner?", JSON.stringify(shown.rendered));
    check("outbox: ... and its text part, the cart with its price",
      /Trail Runner, 20\.00 EUR/.test(parts.text || ""), parts.text);
    check("outbox: ... as the strategy would send it now", shown.rendered.verdict === "send",
      JSON.stringify(shown.rendered));
    await page.$$eval("table tr", (trs, key) => {
      const tr = trs.find((t) => t.children[0] && t.children[0].textContent === key);
      tr.querySelector(".preview-btn").click();
    }, waiting.key);
    await page.waitForSelector("#message-preview[data-key='" + waiting.key + "']");
    check("outbox: the message preview names its recipient",
      /To: sim-cart-1@example\.com/.test(await page.textContent("#message-preview")));
    check("outbox: the preview shows the rendered subject",
      (await page.textContent("#message-subject")) === parts.subject);
    check("outbox: the preview says it would be sent",
      (await page.textContent("#message-verdict")) === "would be sent now");
    check("outbox: the HTML part's frame is sandboxed",
      (await page.getAttribute("#message-html", "sandbox")) === "");
    const frame = await (await page.$("#message-html")).contentFrame();
    await frame.waitForFunction(() => document.body && /Trail Runner/.test(document.body.textContent));
    check("outbox: the HTML part is drawn: the cart, its link",
      /Back to your cart/.test(await frame.textContent("body")) &&
      (await frame.getAttribute("a[href='https://trail.example/p/sim-item']", "href")) !== null);
    const page1 = await http(base, "GET", "/admin/api/outbox/message.html?key=" + encodeURIComponent(waiting.key),
      { token: ADMIN });
    check("outbox: the HTML part is served as its own sandboxed page",
      page1.status === 200 && page1.text === parts.html &&
      /sandbox/.test(page1.headers.get("content-security-policy") || ""), page1.status);
    check("outbox: the text part is the rendered one",
      (await page.textContent("#message-text")) === parts.text);
    // The preview alone: headless chromium leaves a cross-origin frame
    // out of full-page captures, not out of an element's.
    await (await page.$("#message-preview")).screenshot({ path: path.join(SHOTS, "console-outbox-preview.png") });
    // A row still to go has no retry: retrying makes a row due now, so the
    // cart email would go at once instead of after its delay.
    check("outbox: a scheduled row has no retry button", await page.$$eval("table tr", (trs, key) => {
      const tr = trs.find((t) => t.children[0] && t.children[0].textContent === key);
      return !!tr && !tr.querySelector(".retry-btn");
    }, waiting.key));
    // Times say their zone: the tables and the API's are UTC.
    check("outbox: the due time says UTC", await page.$$eval("table tr", (trs, key) => {
      const tr = trs.find((t) => t.children[0] && t.children[0].textContent === key);
      return !!tr && / UTC$/.test(tr.children[3].textContent);
    }, waiting.key));
    const cancelled = box.totals.cancelled || 0;
    check("outbox: a cancelled row has a retry button", await page.$$eval("table tr", (trs) => {
      const tr = trs.find((t) => t.children[4] && t.children[4].textContent === "cancelled" &&
        t.querySelector(".retry-btn"));
      if (tr) tr.querySelector(".retry-btn").click();
      return !!tr;
    }));
    await noteSays(page, "retried ");
    check("outbox: retry acts", (await page.textContent("#note")) === "retried 1");
    check("outbox: a retried row is scheduled again",
      Number(await card(page, "outbox_cancelled")) === cancelled - 1);
    await page.selectOption("#purge-state", "cancelled");
    await page.click("#purge");
    await noteSays(page, "purged "); // the retry's note stays until the purge re-renders
    check("outbox: purge acts", (await page.textContent("#note")) === "purged " + (cancelled - 1),
      await page.textContent("#note"));
    check("outbox: nothing cancelled is left", Number(await card(page, "outbox_cancelled")) === 0);

    // Audiences and segments: a few snapshots kept first (one a second).
    let aud = null;
    for (let i = 0; i < 100; i++) {
      aud = (await http(base, "GET", "/admin/api/audiences", { token: ADMIN })).json;
      if (aud.history.length >= 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    check("audiences: snapshots are kept over time", aud.history.length >= 3 &&
      aud.history.slice(0, -1).every((h) => !h.live) && aud.history[aud.history.length - 1].live,
      JSON.stringify(aud.history.map((h) => h.at)));
    await open(page, base, "audiences");
    aud = (await http(base, "GET", "/admin/api/audiences", { token: ADMIN })).json;
    const demoEvents = fs.readFileSync(eventsFile, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    const want = audiencesOf(demoEvents.concat(sim.evs), aud.now);
    check("audiences: five of them", aud.audiences.length === 5, JSON.stringify(aud.audiences));
    for (const a of aud.audiences) {
      check("audiences: " + a.key + " equals what the events say", a.size === (want[a.key] || 0),
        a.size + " vs " + want[a.key]);
      check("audiences: the page shows " + a.key,
        Number(await card(page, "aud_" + a.key.replace("/", "_"))) === a.size);
    }
    check("audiences: every kind has members here", Object.keys(want).length === 5, JSON.stringify(want));
    check("audiences: segments were fitted", aud.segments.length > 0 && aud.segments.every((g) => g.size > 0));
    for (const g of aud.segments)
      check("audiences: the page shows " + g.key,
        Number(await page.getAttribute("[data-k='" + g.key + "']", "data-v")) === g.size);
    check("audiences: the chart is drawn", await canvasDrawn(page, "#sizes-chart canvas"));
    check("audiences: the chart has the snapshots",
      Number(await page.getAttribute("#sizes-chart", "data-points")) >= 3);
    // The sample of the first audience (buyers): the last seen first, with
    // contact details for an admin.
    const buyers = await page.$$eval("#members[data-of='buyers/14'] tr", (trs) => trs.slice(1).map((tr) =>
      Array.from(tr.children).map((td) => td.textContent)));
    check("audiences: buyers' sample, the latest order first, with the email",
      buyers.length > 0 && buyers[0][0] === "sim-cart-0" && buyers[0][5] === "sim-cart-0@example.com",
      JSON.stringify(buyers[0]));
    const metricsMembers = (await http(base, "GET", "/admin/api/audiences/members?audience=buyers&days=14",
      { token: METRICS })).json;
    check("audiences: a metrics token's sample has no contact details",
      metricsMembers.members.length > 0 && metricsMembers.members.every((m) => m.email === undefined) &&
      metricsMembers.pii === false);
    check("audiences: a metrics token may not export",
      (await http(base, "GET", "/admin/api/audiences/export?audience=buyers&days=14", { token: METRICS })).status === 403);
    // Another audience's sample, then its download.
    await page.selectOption("#members-of", "cart_abandoners/2");
    await page.click("#members-go");
    await page.waitForSelector("#members[data-of='cart_abandoners/2']");
    const carts2 = aud.audiences.find((a) => a.key === "cart_abandoners/2");
    check("audiences: the cart abandoners' sample", Number(await page.getAttribute("#members", "data-size")) === carts2.size &&
      (await page.$$eval("#members tr", (trs) => trs.some((tr) => tr.children[0].textContent === "sim-cart-1"))));
    await page.screenshot({ path: path.join(SHOTS, "console-audiences.png"), fullPage: true });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
    const csv = fs.readFileSync(await download.path(), "utf8").trim().split("\n");
    const sha = crypto.createHash("sha256").update("sim-cart-1@example.com").digest("hex");
    check("audiences: the download is the audience as CSV", csv[0] === "customer,anon,email_sha256" &&
      csv.length - 1 === carts2.size && csv.includes("sim-cart-1,," + sha), csv.slice(0, 3).join(" | "));
    check("audiences: the download's name", download.suggestedFilename() === "cart_abandoners-2-days.csv",
      download.suggestedFilename());

    // Visitor preview.
    await page.goto(base + "/admin/#preview");
    await page.waitForSelector("body[data-ready=preview]");
    await page.fill("#pv-customer", "demo-vip");
    await page.click("#pv-go");
    await page.waitForSelector("body[data-ready=preview] #decisions");
    const items = await page.$$("[data-page=home] .item");
    check("preview: the home page's recommendations, with explanations", items.length > 0);
    check("preview: the popup decision", await page.$("[data-kind=popup]") !== null);
    await open(page, base, "preview");

    // Strategies.
    await open(page, base, "strategies");
    const lua = [];
    (function walk(d, rel) {
      for (const f of fs.readdirSync(d, { withFileTypes: true })) {
        if (f.isDirectory()) walk(path.join(d, f.name), rel + f.name + "/");
        else if (f.name.endsWith(".lua")) lua.push(rel + f.name);
      }
    })(path.join(ROOT, "strategies"), "");
    const listed = await page.$$eval("table:first-of-type tr", (trs) => trs.slice(1).map((t) => t.children[0].textContent));
    check("strategies: every file listed", lua.every((f) => listed.includes(f)), JSON.stringify(listed));
    check("strategies: the last reload is ok", (await page.textContent("#reload")) === "ok");
    await page.click("#run-check");
    await page.waitForSelector("#check-summary", { timeout: WAIT_MS * 2 });
    await page.screenshot({ path: path.join(SHOTS, "console-strategies-check.png"), fullPage: true });
    check("strategies: the check ran over sample visitors", /^\d+ visitors/.test(await page.textContent("#check-summary")));

    // Log out: the cookie no longer works.
    await page.click("#logout");
    await page.waitForSelector("#login:not([hidden])");
    const r = await page.evaluate(() => fetch("/admin/api/session").then((x) => x.status));
    check("after logout the session is gone", r === 401);
  } finally {
    await context.close();
  }
}

/* A second server whose logins last 1.5 s: an expired cookie is refused. */
async function expiry(dir) {
  fs.mkdirSync(dir, { recursive: true });
  config(dir, { console_session_ms: 1500 });
  const server = await serve(dir);
  try {
    const base = "http://127.0.0.1:" + server.port;
    const login = await http(base, "POST", "/admin/login", { body: "token=" + ADMIN });
    const cookie = (login.headers.get("set-cookie") || "").split(";")[0];
    check("a fresh cookie works",
      (await http(base, "GET", "/admin/api/session", { headers: { Cookie: cookie } })).status === 200);
    await new Promise((r) => setTimeout(r, 1700));
    check("an expired cookie is refused",
      (await http(base, "GET", "/admin/api/overview", { headers: { Cookie: cookie } })).status === 401);
  } finally {
    await stop(server);
  }
}

async function main() {
  const watchdog = setTimeout(() => {
    console.error("FAIL: the test took longer than " + TEST_DEADLINE_MS + " ms");
    process.exit(1);
  }, TEST_DEADLINE_MS);
  const dir = fs.mkdtempSync(path.join(TMP, "console-"));
  let server = null;
  try {
    const events = path.join(dir, "shop.ndjson");
    execFileSync("python3", [path.join(ROOT, "examples", "data", "generate.py"), "--events", events,
      "--site", path.join(dir, "site")], { stdio: "inherit", timeout: WAIT_MS * 3 });
    execFileSync(TAILOR, ["ingest", "--db", path.join(dir, "shop.db"), events], { stdio: "inherit", timeout: WAIT_MS * 6 });
    config(dir, { console_snapshot_ms: 1000 }); // sizes over time, every second here
    server = await serve(dir);
    const base = "http://127.0.0.1:" + server.port;
    const now = Date.now();
    const sim = traffic(now);
    // Carts that schedule an abandoned-cart email (customers with consent),
    // the first one's then cancelled by an order.
    const carts = [{ type: "item_upsert", item: { id: "sim-item", name: "Trail Runner", price: 20,
      url: "https://trail.example/p/sim-item" } }];
    for (let i = 0; i < 2; i++) {
      const c = "sim-cart-" + i;
      await http(base, "POST", "/v1/customers", { token: ADMIN,
        body: { id: c, email: c + "@example.com", consent: { email: true } } });
      carts.push({ type: "view", customer: c, item: "sim-item", session: "sim-cart-s" + i, ts: now - 1000 });
      carts.push({ type: "add_to_cart", customer: c, item: "sim-item", price: 20, session: "sim-cart-s" + i, ts: now - 900 });
    }
    sim.evs.push(...carts);
    sim.profiles = 2; // the customer upserts above, events too
    const sent = await http(base, "POST", "/v1/events", { token: ADMIN, body: sim.evs });
    check("the simulated traffic is accepted", sent.json && sent.json.accepted === sim.evs.length, sent.text);
    const last = { type: "purchase", customer: "sim-cart-0", session: "sim-cart-s0", order_id: "sim-cart-o",
      revenue: 20, ts: now - 100, items: [{ id: "sim-item", price: 20 }] };
    sim.evs.push(last);
    check("the order is accepted", (await http(base, "POST", "/v1/events", { token: ADMIN, body: last })).status === 200);
    await run(dir, server, sim, demoFigures(events), events);
    await expiry(path.join(dir, "expiry"));
  } catch (e) {
    check("the test ran to the end", false, e.stack || String(e));
  } finally {
    await stop(server);
    clearTimeout(watchdog);
  }
  if (!tally.failed) fs.rmSync(dir, { recursive: true, force: true });
  console.log("render ms by page: " + JSON.stringify(times));
  console.log("screenshots: " + SHOTS);
  console.log(tally.summary());
  process.exit(tally.failed ? 1 : 0);
}

main();
