// consent_test.js: tailor.js's consent gate and traffic source in a real
// browser against a real `tailor serve`.  A page with
// Tailor.init({requireConsent: true}), opened from a newsletter link
// (utm_source, utm_medium, utm_campaign):
//
//   - before consent nothing is sent to /v1/events and nothing is stored
//     (no tailor.* key in localStorage), though the page tracks
//   - tailor.consent({analytics, personalization, marketing}) sends a
//     consent event; then the page's events go, carrying the session's
//     source, which the server keeps: a strategy reads ctx.session.source
//     {medium: "email", source: "newsletter", campaign: "spring", device}
//   - a search-engine referrer is classified "search"
//   - analytics withdrawn: the page sends nothing more, and the server
//     keeps nothing more of the visitor (an event posted for them anyway)
//   - an event whose first try is lost goes again with the same message id
//     and is stored once
//   - a refusal reaches onError with the server's message, status, code and
//     field; a proxy's refusal that is not JSON with its status, not retried
//   - a rank whose request fails resolves to the shop's list in its order
//   - email capture names a customer only with an unexpired customer token
//   - everything withdrawn: the consent event names the visitor, and only
//     the choice stays in localStorage
//   - a login before consent is linked once the visitor allows it
//
// Environment as demo_test.js: TAILOR, TAILOR_ROOT, TAILOR_TEST_TMP,
// CHROMIUM, NODE_PATH (playwright-core).
"use strict";

const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const kit = require("./kit");
const { ROOT, TAILOR, TMP, CHROMIUM, CHROMIUM_ARGS, startTailor } = kit;
const TOKEN = "consent-storefront-token-0001";
const WAIT_MS = 20000;

const tally = kit.tally();
const check = tally.check;

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>consent</title></head>
<body><script src="/tailor.js"></script><script>
  window.t = Tailor.init({ token: "${TOKEN}", requireConsent: true });
  t.pageView();
  t.viewed("hat");
  document.body.setAttribute("data-ready", "1");
</script></body></html>`;

/* A probe strategy: what the engine keeps of the visitor and session. */
const PROBE = `return { probe = function(ctx)
  return { source = ctx.session.source or false, recent = #ctx.customer.recent,
           consent = ctx.customer.consent, orders = ctx.customer.orders }
end }`;

function serve(dir) {
  const site = path.join(dir, "site");
  const strategies = path.join(dir, "strategies");
  fs.mkdirSync(site, { recursive: true });
  fs.mkdirSync(strategies, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "examples", "storefront", "tailor.js"), path.join(site, "tailor.js"));
  fs.writeFileSync(path.join(site, "consent.html"), PAGE);
  fs.writeFileSync(path.join(strategies, "probe.lua"), PROBE);
  fs.writeFileSync(path.join(dir, "tailor.json"), JSON.stringify({
    db: path.join(dir, "shop.db"), strategies,
    server: { listen: "127.0.0.1:0", static_dir: site, tokens: [{ token: TOKEN, role: "storefront" }] },
  }));
  return startTailor(dir, ["--config", path.join(dir, "tailor.json")]);
}

async function post(port, p, body) {
  const r = await fetch("http://127.0.0.1:" + port + p, {
    method: "POST", body: JSON.stringify(body),
    headers: { "Authorization": "Bearer " + TOKEN, "Content-Type": "application/json" },
  });
  return r.json();
}

async function probe(port, who) {
  const d = await post(port, "/v1/decide/probe", { anon: who.anon, session: who.session });
  return d.result || d;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(TMP, "consent-"));
  const srv = await serve(dir);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    const events = [];
    page.on("request", (r) => {
      if (r.url().includes("/v1/events")) events.push(JSON.parse(r.postData() || "{}"));
    });
    const base = "http://127.0.0.1:" + srv.port;
    await page.goto(base + "/consent.html?utm_source=Newsletter&utm_medium=email&utm_campaign=spring");
    await page.waitForSelector("body[data-ready]", { state: "attached", timeout: WAIT_MS });
    await page.waitForTimeout(500);
    check("nothing sent before consent", events.length === 0, events);
    const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("tailor.")));
    check("nothing stored before consent", stored.length === 0, stored);

    // The banner's answer, then the page goes on tracking.
    await page.evaluate(() => t.consent({ analytics: true, personalization: true, marketing: false }));
    await page.evaluate(() => Promise.all([t.pageView(), t.viewed("hat")]));
    const types = events.map((e) => e.type);
    check("consent, then the page's events, are sent", types.join(",") === "consent,page_view,view", types);
    const consent = events.find((e) => e.type === "consent") || {};
    check("the consent event names each purpose",
      JSON.stringify(consent.props) === JSON.stringify({ analytics: true, personalization: true, marketing: false }),
      consent);
    const view = events.find((e) => e.type === "view") || { props: {} };
    check("events carry the session's source",
      view.props.medium === "email" && view.props.source === "newsletter" &&
      view.props.campaign === "spring" && view.props.device === "desktop", view.props);
    const who = await page.evaluate(() => t.who());
    const keys = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("tailor.")));
    check("the ids are stored once consented", keys.includes("tailor.anon") && keys.includes("tailor.consent"), keys);
    let r = await probe(srv.port, who);
    check("the server keeps the source with the session (ctx.session.source)",
      JSON.stringify(r.source) === JSON.stringify({ campaign: "spring", device: "desktop", medium: "email", source: "newsletter" }) ||
      (r.source && r.source.medium === "email" && r.source.source === "newsletter" &&
       r.source.campaign === "spring" && r.source.device === "desktop"), r);
    check("the server has the view", r.recent === 1, r);
    check("the server knows marketing was declined", r.consent && r.consent.marketing === false, r);

    // A visitor from a search engine, in a fresh context.
    const ctx2 = await browser.newContext();
    const page2 = await ctx2.newPage();
    await page2.goto(base + "/consent.html", { referer: "https://www.google.com/" });
    await page2.waitForSelector("body[data-ready]", { state: "attached", timeout: WAIT_MS });
    const src2 = await page2.evaluate(() => t.source());
    check("a search engine's referrer is 'search'", src2.medium === "search" && src2.source === "google.com", src2);
    await ctx2.close();

    // Analytics withdrawn: the page stops, and the server keeps nothing more.
    events.length = 0;
    await page.evaluate(() => t.consent({ analytics: false, personalization: true, marketing: false }));
    await page.evaluate(() => t.viewed("scarf"));
    check("after withdrawing, only the consent event is sent",
      events.map((e) => e.type).join(",") === "consent", events);
    await post(srv.port, "/v1/events", { type: "view", anon: who.anon, session: who.session, item: "gloves" });
    r = await probe(srv.port, who);
    check("the server keeps no event of a visitor without analytics consent", r.recent === 1, r);
    check("ctx.customer.consent.analytics is false", r.consent && r.consent.analytics === false, r);

    // Every event has a message id; one whose first try is lost on the
    // network goes again with the same id and is stored once.
    await page.evaluate(() => t.consent({ analytics: true, personalization: true, marketing: false }));
    events.length = 0;
    let dropped = 0;
    await page.route("**/v1/events", (route) => {
      if (dropped++ === 0) return route.abort("failed");
      return route.continue();
    });
    const before = (await probe(srv.port, who)).recent;
    const answer = await page.evaluate(() => t.viewed("gloves"));
    await page.unroute("**/v1/events");
    const views = events.filter((e) => e.type === "view");
    check("a lost event is sent again", views.length === 2, views);
    check("with the same message id", views.length === 2 && !!views[0].message_id &&
      views[0].message_id === views[1].message_id, views);
    check("and its promise resolves to the server's answer", answer && answer.ok === true, answer);
    r = await probe(srv.port, who);
    check("and the server has it once", r.recent === before + 1, { before, r });

    // The thank-you page shown again (a reload) sends its order again,
    // with the same message id: stored once.
    events.length = 0;
    const order = () => t.orderCompleted("o-77", [{ id: "scarf", price: 20, quantity: 1 }]);
    const ordersBefore = (await probe(srv.port, who)).orders;
    await page.evaluate(order);
    await page.evaluate(order);
    const orders = events.filter((e) => e.type === "purchase");
    check("an order sent twice carries one message id", orders.length === 2 &&
      !!orders[0].message_id && orders[0].message_id === orders[1].message_id, orders);
    r = await probe(srv.port, who);
    check("and the server counts it once", r.orders === ordersBefore + 1, { ordersBefore, r });

    // A refusal reaches onError as an Error with the server's message,
    // status, code and field; one that is not JSON (a proxy's page) with
    // its status, and a 4xx is not tried again.
    const failed = (fn) => page.evaluate(async (src) => {
      let seen = null;
      const was = t.onError;
      t.onError = (e) => { seen = { message: e.message, status: e.status, code: e.code, field: e.field }; };
      const answer = await (0, eval)(src)();
      t.onError = was;
      return { answer, seen };
    }, fn);
    const bad = await failed("() => t.track('view')");
    check("the server's refusal reaches onError with its code and field", bad.answer === null &&
      bad.seen && bad.seen.status === 400 && bad.seen.code === "bad_field" && bad.seen.field === "item" &&
      /missing field 'item'/.test(bad.seen.message), bad);
    let tries = 0;
    await page.route("**/v1/events", (route) => {
      tries++;
      return route.fulfill({ status: 413, contentType: "text/html",
                             body: "<html><body><h1>413 Request Entity Too Large</h1></body></html>" });
    });
    const proxied = await failed("() => t.viewed('mittens')");
    await page.unroute("**/v1/events");
    check("a proxy's refusal that is not JSON is not tried again", tries === 1, tries);
    check("and reaches onError as its status", proxied.answer === null && proxied.seen &&
      proxied.seen.message === "HTTP 413" && proxied.seen.status === 413, proxied);

    // Email capture names the customer only with a proof that holds: a
    // token kept past its expiry, or none, sends the address as the
    // anonymous visitor's (the server refuses a customer without proof).
    const subscribed = [];
    const ctx4 = await browser.newContext();
    const page4 = await ctx4.newPage();
    await page4.route("**/v1/subscribe", (route) => {
      subscribed.push(JSON.parse(route.request().postData() || "{}"));
      return route.fulfill({ status: 200, contentType: "application/json",
                             body: JSON.stringify({ status: "pending", expires: 0 }) });
    });
    await page4.goto(base + "/consent.html");
    await page4.waitForSelector("body[data-ready]", { state: "attached", timeout: WAIT_MS });
    const soon = Math.floor(Date.now() / 1000) + 3600, gone = Math.floor(Date.now() / 1000) - 60;
    await page4.evaluate(async ([soon, gone]) => {
      for (const token of [undefined, "c-7." + gone + ".ab12", "c-7." + soon + ".ab12"]) {
        t.reset({ anon: "v-7", customer: "c-7", customerToken: token });
        await t.subscribe("ada@example.com", { purpose: "newsletter" });
      }
    }, [soon, gone]);
    await ctx4.close();
    check("a subscribe names the customer only with an unexpired token",
      subscribed.map((b) => b.customer || "anon:" + b.anon).join(",") === "anon:v-7,anon:v-7,c-7", subscribed);

    // A rank whose request fails resolves to the shop's list as it was.
    await page.route("**/v1/decide/rank", (route) => route.abort("failed"));
    const ranked = await failed("() => t.decide('rank', { items: ['hat', 'scarf', 'gloves'] })");
    await page.unroute("**/v1/decide/rank");
    check("a failed rank gives the shop's own list in its order", ranked.answer.fallback === true &&
      ranked.answer.items.map((i) => i.id).join(",") === "hat,scarf,gloves" && ranked.seen !== null, ranked);

    // Everything withdrawn: the consent event still names the visitor, and
    // nothing but the choice stays stored.
    events.length = 0;
    await page.evaluate(() => t.consent({ analytics: false, personalization: false, marketing: false }));
    const withdrawn = events.find((e) => e.type === "consent") || {};
    check("a withdrawal names the visitor", withdrawn.anon === who.anon, withdrawn);
    const left = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("tailor.")));
    check("only the choice stays stored", left.join(",") === "tailor.consent", left);
    r = await probe(srv.port, who);
    check("the server answers them as anyone now (personalization withdrawn)",
      r.recent === 0 && r.source === false, r);

    // A login before consent is linked once the visitor allows it.
    const ctx3 = await browser.newContext();
    const page3 = await ctx3.newPage();
    const sent3 = [];
    page3.on("request", (q) => { if (q.url().includes("/v1/identify")) sent3.push(JSON.parse(q.postData() || "{}")); });
    await page3.goto(base + "/consent.html");
    await page3.waitForSelector("body[data-ready]", { state: "attached", timeout: WAIT_MS });
    await page3.evaluate(() => t.identify("c-late"));
    check("no identify before consent", sent3.length === 0, sent3);
    await page3.evaluate(() => t.consent({ analytics: true, personalization: true, marketing: true }));
    check("the login is linked after consent", sent3.length === 1 && sent3[0].customer === "c-late" &&
      !!sent3[0].anon, sent3);
    await ctx3.close();
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
