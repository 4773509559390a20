/*
 * tailor.js: the storefront snippet for `tailor serve`.  No build step, no
 * dependencies; docs/storefront.md explains it for a shop developer.
 *
 *   const t = Tailor.init({ endpoint: "https://tailor.example", token: "sf-...",
 *                           product: (id) => shop.products[id] });
 *   t.viewed("sku-1");                                  // a product page
 *   t.recommend(el, { page: { type: "product", item: "sku-1" }, title: "Bought together" });
 *   t.watchPopups();                                    // exit intent / page hidden
 *
 * It keeps an anonymous visitor id (localStorage) and a session id that
 * ends after 30 idle minutes, sends events to POST /v1/events, asks for
 * decisions with POST /v1/decide/{kind}, and renders what comes back:
 * recommendation widgets with the explanation under each item, and the
 * popup the strategy chose.  Every request carries the storefront token,
 * which is public by design (it may only send events and ask decisions).
 *
 * Email capture: the strategy's email_capture popup is a form whose
 * address goes to POST /v1/subscribe (double opt-in; subscribe()).
 *
 * Zero-party data: quiz(el) shows the strategy's guided-selling quiz and
 * sends each answer (quiz_answer); preferences(el) is a small preference
 * centre where the visitor sees what they told the shop (POST /v1/prefs)
 * and changes or removes it.  Strategies read it as ctx.customer.prefs.
 *
 * Consent: with requireConsent nothing is sent or stored before
 * tailor.consent({analytics, personalization, marketing}); the choice goes
 * to the server as a consent event, which honours each purpose too.  The
 * session's traffic source (UTM parameters, the referrer's kind, the
 * device class) is parsed once a session and sent with its events.
 */
(function (global) {
  "use strict";

  var STORE_PREFIX = "tailor.";
  /* What tailor.js keeps in localStorage (besides the consent choice). */
  var STORED_KEYS = ["anon", "customer", "customer_token", "session", "session_last", "source", "landed"];
  var SESSION_IDLE_MS = 30 * 60 * 1000; // a visit ends after this long idle
  var EXIT_INTENT_MIN_MS = 2000;        // ignore exits this soon after load
  var DEFAULT_K = 4;
  var POPUP_EVENTS = ["exit_intent", "page_hidden"]; // triggers that are event types

  /* localStorage that fails quietly (private mode, storage off): the
     visitor then lives as long as the page.  Until the visitor consents
     (when the shop requires it) nothing goes to storage: `persist` is off
     and the ids live in `memory`, as long as the page. */
  var memory = {};
  var persist = true;
  function load(key) {
    if (!persist) return memory[key] || null;
    try { return global.localStorage.getItem(STORE_PREFIX + key); } catch (e) { return memory[key] || null; }
  }
  function save(key, value) {
    if (!persist) { memory[key] = value; return; }
    try {
      if (value == null) global.localStorage.removeItem(STORE_PREFIX + key);
      else global.localStorage.setItem(STORE_PREFIX + key, value);
    } catch (e) { memory[key] = value; }
  }
  /* The visitor's consent choice, kept in storage once given. */
  function loadConsent() {
    try { return JSON.parse(global.localStorage.getItem(STORE_PREFIX + "consent")); } catch (e) { return null; }
  }

  /* Where the session came from, parsed once a session: {medium, source,
     campaign, device}.  medium: paid, email, social, search, referral or
     direct; UTM parameters win over the referrer. */
  var SEARCH_HOSTS = /(^|\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|startpage)\./;
  var SOCIAL_HOSTS = /(^|\.)(facebook|instagram|twitter|linkedin|pinterest|reddit|tiktok|youtube|snapchat|threads)\.|^(t\.co|x\.com|lnkd\.in)$/;
  var MAIL_HOSTS = /(^|\.)(mail\.google|outlook\.live|mail\.yahoo|webmail)\.|^mail\./;
  function deviceClass(ua) {
    if (/iPad|Tablet|PlayBook|Silk|(Android(?!.*Mobi))/i.test(ua)) return "tablet";
    if (/Mobi|iPhone|iPod|Android|Windows Phone/i.test(ua)) return "mobile";
    return "desktop";
  }
  function mediumOf(utm) {
    var m = utm.toLowerCase();
    if (/^(cpc|ppc|paid|paidsearch|paid_search|paid-social|paid_social|display|cpm|cpv|banner|retargeting|affiliate)$/.test(m)) return "paid";
    if (/^(e-?mail|newsletter)$/.test(m)) return "email";
    if (/^(social|social-network|social-media|sm|social_media)$/.test(m)) return "social";
    if (m === "organic") return "search";
    return m;
  }
  function parseSource(loc, referrer, ua) {
    var q = {};
    (loc.search || "").replace(/^\?/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) {
        try { q[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " ")); } catch (e) {}
      }
    });
    var host = "";
    try { host = referrer ? new URL(referrer).hostname.toLowerCase() : ""; } catch (e) {}
    if (host && host === (loc.hostname || "").toLowerCase()) host = ""; // within the shop
    var out = { device: deviceClass(ua || "") };
    if (q.utm_medium || q.utm_source) {
      out.medium = q.utm_medium ? mediumOf(q.utm_medium) : "referral";
      out.source = (q.utm_source || host || "").toLowerCase() || undefined;
    } else if (q.gclid || q.msclkid || q.fbclid || q.ttclid) {
      out.medium = "paid";
      out.source = q.gclid ? "google" : q.msclkid ? "bing" : q.fbclid ? "facebook" : "tiktok";
    } else if (!host) {
      out.medium = "direct";
    } else {
      out.medium = SEARCH_HOSTS.test(host) ? "search" : SOCIAL_HOSTS.test(host) ? "social"
        : MAIL_HOSTS.test(host) ? "email" : "referral";
      out.source = host.replace(/^www\./, "");
    }
    if (q.utm_campaign) out.campaign = q.utm_campaign;
    return out;
  }

  function randomId(prefix) {
    var c = global.crypto;
    if (c && c.randomUUID) return prefix + c.randomUUID();
    return prefix + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  function guessDevice() {
    var coarse = global.matchMedia && global.matchMedia("(pointer: coarse)").matches;
    var mobileUA = /Mobi|Android|iPhone|iPad/i.test(global.navigator.userAgent || "");
    return coarse || mobileUA ? "mobile" : "desktop";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function Tailor(options) {
    this.endpoint = (options.endpoint || "").replace(/\/$/, "");
    this.token = options.token;
    this.device = options.device || guessDevice();
    this.context = options.context || {};
    this.product = options.product || function () { return null; };
    this.onError = options.onError || function (err) { if (global.console) console.warn("tailor:", err); };
    this.timeoutMs = options.timeoutMs || TIMEOUT_MS;
    this.forcedDevice = options.device;
    /* The items this page shows so far, each widget's asked in turn
       (recommend's exclude). */
    this.shownOnPage = [];
    this.requireConsent = !!options.requireConsent;
    this.choice = loadConsent();
    persist = !this.requireConsent || !!(this.choice && (this.choice.analytics || this.choice.personalization));
    if (options.anon) save("anon", options.anon);
    if (options.customer !== undefined) save("customer", options.customer);
    if (options.customerToken !== undefined) save("customer_token", options.customerToken);
    if (!load("anon")) save("anon", randomId("v-"));
    if (options.styles !== false) injectStyles();
  }

  /* Who is browsing: the anonymous id, the customer once known, and the
     session, renewed after SESSION_IDLE_MS without activity. */
  Tailor.prototype.who = function () {
    var now = Date.now();
    var session = load("session"), last = Number(load("session_last") || 0);
    if (!session || now - last > SESSION_IDLE_MS) {
      session = randomId("s-");
      save("source", JSON.stringify(parseSource(global.location || {}, global.document ? document.referrer : "",
                                                global.navigator ? navigator.userAgent : "")));
    }
    save("session", session);
    save("session_last", String(now));
    var who = { anon: load("anon"), session: session };
    var customer = load("customer");
    if (customer) who.customer = customer;
    return who;
  };

  /* Start over as someone else (a log-out, or the demo's visitor switch):
     the given ids or a fresh anonymous one, and a new session. */
  Tailor.prototype.reset = function (ids) {
    ids = ids || {};
    save("anon", ids.anon || randomId("v-"));
    save("customer", ids.customer || null);
    save("customer_token", ids.customerToken || null);
    save("session", null);
  };

  /* A request that takes longer than this is a failed one (onError), so a
     stalled network never leaves a widget loading or the popup asked. */
  var TIMEOUT_MS = 5000;

  Tailor.prototype.request = function (path, body, keepalive) {
    var headers = { "Authorization": "Bearer " + this.token, "Content-Type": "application/json" };
    /* The shop's proof of who is logged in (docs/server.md): without it the
       server treats every request as the anonymous visitor's. */
    var proof = load("customer_token");
    if (proof) headers["X-Tailor-Customer"] = proof;
    var abort = global.AbortController ? new AbortController() : null;
    var timer = abort ? setTimeout(function () { abort.abort(); }, this.timeoutMs) : null;
    return fetch(this.endpoint + path, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
      keepalive: !!keepalive, // lets an event leave with a page being closed
      signal: abort ? abort.signal : undefined,
    }).then(function (res) {
      /* An answer that is not JSON (a proxy's error page, a wrong
         endpoint) still fails with its status, so a 4xx is not retried
         and onError says "HTTP 502", not what JSON.parse thought of it. */
      return res.json().catch(function () { return null; }).then(function (data) {
        if (!res.ok || !data) throw httpError(res.status, data && data.error);
        return data;
      });
    }).finally(function () { if (timer) clearTimeout(timer); });
  };

  /* The server's error ({code, message, field}) as an Error: its message,
     and status, code and field for the shop's own page. */
  function httpError(status, e) {
    var err = new Error((e && e.message) || "HTTP " + status + (status < 300 ? ": the answer is not JSON" : ""));
    err.status = status;
    if (e) { err.code = e.code; err.field = e.field; }
    return err;
  }

  /* An event (or events) to the server: it carries a message id, made once,
     so a retry after a lost answer or a timeout is stored once (docs/events.md);
     tried again twice on a network error or a server error, never on a
     refusal (4xx).  Resolves to the server's answer, or null after
     onError once every try failed. */
  Tailor.prototype.send = function (ev, rejects) {
    if (ev.message_id == null) ev.message_id = randomId("m-");
    var self = this, tries = 0;
    function attempt() {
      tries++;
      return self.request("/v1/events", ev, true).catch(function (err) {
        if (tries < 3 && !(err.status >= 400 && err.status < 500)) {
          return new Promise(function (ok) { setTimeout(ok, 400 * tries); }).then(attempt);
        }
        throw err;
      });
    }
    if (rejects) return attempt(); /* the caller shows the refusal (the quiz) */
    return attempt().catch(function (err) { self.onError(err); return null; });
  };

  /* Whether the visitor allows a purpose (analytics, personalization,
     marketing): without requireConsent, unless they declined it; with it,
     only once they accepted it. */
  Tailor.prototype.allows = function (purpose) {
    if (this.choice && purpose in this.choice) return !!this.choice[purpose];
    return !this.requireConsent;
  };

  /*
   * The visitor's choice, from the shop's consent banner: {analytics,
   * personalization, marketing} (true or false each).  Kept in storage and
   * sent as a consent event, so the server honours it too: no events kept
   * without analytics, non-personal decisions without personalization, no
   * emails or audiences without marketing.
   */
  Tailor.prototype.consent = function (choice) {
    var c = { analytics: !!choice.analytics, personalization: !!choice.personalization,
              marketing: !!choice.marketing };
    this.choice = c;
    try { global.localStorage.setItem(STORE_PREFIX + "consent", JSON.stringify(c)); } catch (e) {}
    /* The choice names the visitor as they were: read before storage may
       be given up below (a withdrawal sent without ids changed nothing). */
    var ev = Object.assign({ type: "consent", props: c }, this.who());
    var keep = c.analytics || c.personalization;
    if (keep && !persist) { /* the ids made so far go to storage now */
      persist = true;
      for (var k in memory) if (memory[k] != null) save(k, memory[k]);
    } else if (!keep && persist && this.requireConsent) {
      /* Withdrawn: the ids live as long as the page, nothing stays stored
         but the choice itself. */
      for (var i = 0; i < STORED_KEYS.length; i++) {
        var v = load(STORED_KEYS[i]);
        if (v != null) memory[STORED_KEYS[i]] = v;
        try { global.localStorage.removeItem(STORE_PREFIX + STORED_KEYS[i]); } catch (e) {}
      }
      persist = false;
    }
    var sent = this.send(ev);
    /* A login before the visitor allowed it is linked now. */
    if (keep && this.pendingIdentify) {
      var who = this.who();
      this.pendingIdentify = false;
      var self = this;
      sent = sent.then(function () {
        return self.request("/v1/identify", { customer: who.customer, anon: who.anon })
          .catch(function (err) { self.onError(err); return null; });
      });
    }
    return sent;
  };

  /* The session's traffic source, as parsed when it began. */
  Tailor.prototype.source = function () {
    this.who();
    var s;
    try { s = JSON.parse(load("source")) || {}; } catch (e) { s = {}; }
    if (this.forcedDevice) s.device = this.forcedDevice;
    return s;
  };

  /* One event in tailor's format (docs/events.md); resolves when stored.
     Nothing is sent without the visitor's consent to analytics. */
  Tailor.prototype.track = function (type, fields) {
    if (!this.allows("analytics")) return Promise.resolve(null);
    var ev = Object.assign({ type: type }, this.who(), fields || {});
    ev.props = Object.assign({ device: this.device }, this.context.country ? { country: this.context.country } : {},
                             this.source(), ev.props || {});
    return this.send(ev);
  };

  Tailor.prototype.pageView = function (props) { return this.track("page_view", { props: props }); };
  Tailor.prototype.viewed = function (item) { return this.track("view", { item: item }); };
  Tailor.prototype.addedToCart = function (item, price, quantity) {
    return this.track("add_to_cart", { item: item, price: price, quantity: quantity || 1 });
  };
  Tailor.prototype.removedFromCart = function (item) { return this.track("remove_from_cart", { item: item }); };
  /* lines: [{id, price, quantity}].  The event's message id is made of
     this browser's anonymous id and the order's: a thank-you page shown
     again (a reload, the back button) sends the same event, which the
     server stores once, and another browser cannot guess it to make the
     real one a duplicate. */
  Tailor.prototype.orderCompleted = function (orderId, lines, revenue) {
    var fields = { order_id: orderId, items: lines, message_id: "order-" + load("anon") + "-" + orderId };
    if (revenue != null) fields.revenue = revenue;
    return this.track("purchase", fields);
  };
  /* On log-in: link this browser's anonymous history to the customer.
     customerToken: the proof the shop's backend signed for them. */
  Tailor.prototype.identify = function (customer, customerToken) {
    save("customer", customer); /* in memory until the visitor consents */
    if (customerToken !== undefined) save("customer_token", customerToken);
    if (!this.allows("analytics") && !this.allows("personalization")) {
      this.pendingIdentify = true; /* sent by consent(), once allowed */
      return Promise.resolve(null);
    }
    var who = this.who();
    var self = this;
    return this.request("/v1/identify", { customer: customer, anon: who.anon })
      .catch(function (err) { self.onError(err); });
  };

  /* Ask a strategy: resolves to the decision ({items}, {result}, ...), or
     rejects (the widgets below, which show their error state). */
  Tailor.prototype.ask = function (kind, fields) {
    /* Without consent to personalization: no ids, what anyone gets. */
    var body = Object.assign(this.allows("personalization") ? this.who() : {}, fields || {});
    body.context = Object.assign({ device: this.device }, this.context, body.context || {});
    return this.request("/v1/decide/" + encodeURIComponent(kind), body);
  };

  /* The shop's own decisions: a failed or timed-out one is onError's, and
     resolves to a fallback, so it never throws at the shop's code. */
  Tailor.prototype.decide = function (kind, fields) {
    var self = this;
    return this.ask(kind, fields).catch(function (err) {
      self.onError(err);
      return { kind: kind, fallback: true, error: String((err && err.message) || err),
               items: fallbackItems(kind, fields), result: null };
    });
  };

  /* What a failed decision shows: nothing, but for `rank` the shop's own
     list in its own order, as the server's fallback is (an empty one left
     the shop's category page without products). */
  function fallbackItems(kind, fields) {
    if (kind !== "rank" || !fields || !Array.isArray(fields.items)) return [];
    return fields.items.map(function (id) { return { id: id }; });
  }

  /*
   * A recommendation widget in `container`: a title and up to k product
   * cards, each with the strategy's explanation under it.  opts: page (the
   * page object the strategy reads), k, title, name (for the rec_shown and
   * rec_clicked events), render(item, product) to draw a card yourself.
   * The widget stays hidden when there is nothing to show.  Resolves to
   * the items shown.
   */
  /* The card of an item for a widget (opts.render, else the default),
     counted as shown on the page; null for an item the shop does not sell
     (any more). */
  Tailor.prototype.itemCard = function (item, opts) {
    var product = this.product(item.id);
    if (!product) return null;
    var card = opts.render ? opts.render(item, product) : defaultCard(item, product);
    card.setAttribute("data-item", item.id);
    this.shownOnPage.push(item.id);
    return card;
  };

  Tailor.prototype.recommend = function (container, opts) {
    var self = this;
    opts = opts || {};
    var name = opts.name || (opts.page && opts.page.widget) || (opts.page && opts.page.type) || "recommend";
    container.classList.add("tailor-widget");
    container.setAttribute("data-tailor-state", "loading");
    /* What earlier widgets of this page show is not shown again: it goes to
       the server as `exclude` (render widgets one after another for that).
       Drawn again (after the visitor changed their preferences): what this
       widget showed before is no longer on the page. */
    var before = container.tailorShown || [];
    self.shownOnPage = self.shownOnPage.filter(function (id) { return before.indexOf(id) < 0; });
    container.tailorShown = [];
    var ask = { page: opts.page || { type: "home" }, k: opts.k || DEFAULT_K };
    if (self.shownOnPage.length) ask.exclude = self.shownOnPage.slice();
    return this.ask("recommend", ask)
      .then(function (d) {
        var shown = [];
        var list = el("div", "tailor-items");
        (d.items || []).forEach(function (item) {
          var card = self.itemCard(item, opts);
          if (!card) return; // the shop does not sell it (any more)
          card.addEventListener("click", function () {
            self.track("rec_clicked", { item: item.id, name: name, props: { strategy: d.strategy } });
          });
          list.appendChild(card);
          shown.push(item);
          container.tailorShown.push(item.id);
        });
        container.textContent = "";
        container.setAttribute("data-tailor-state", shown.length ? "ready" : "empty");
        container.hidden = !shown.length;
        if (!shown.length) return shown;
        if (opts.title) container.appendChild(el("h2", "tailor-title", opts.title));
        container.appendChild(list);
        self.track("rec_shown", { name: name, items: shown.map(function (i) { return { id: i.id }; }), props: { strategy: d.strategy } });
        return shown;
      })
      .catch(function (err) {
        container.hidden = true;
        container.setAttribute("data-tailor-state", "error");
        self.onError(err);
        return [];
      });
  };

  /*
   * The landing hero: on the first page of a session that came from
   * somewhere (a campaign, a search, a social post, a link: any medium but
   * direct), asks the `landing` strategy and draws its banner, offer and
   * hero items in `container`.  The ad's search term (utm_term) and the
   * medium go along as context, so the strategy has them even before the
   * page view is stored.  Later pages of the session, and direct visits,
   * leave the container hidden.  opts: k, render(item, product), page.
   * Resolves to the decision's result, or null.
   */
  Tailor.prototype.landing = function (container, opts) {
    var self = this;
    opts = opts || {};
    var who = this.who(), src = this.source();
    container.hidden = true;
    if (!src.medium || src.medium === "direct" || load("landed") === who.session) {
      container.setAttribute("data-tailor-state", "empty");
      return Promise.resolve(null);
    }
    save("landed", who.session);
    var term = new URLSearchParams((global.location && global.location.search) || "").get("utm_term");
    var context = { source: src.medium };
    if (src.campaign) context.campaign = src.campaign;
    if (term) context.term = term;
    container.setAttribute("data-tailor-state", "loading");
    return this.ask("landing", { k: opts.k || DEFAULT_K, page: opts.page || { type: "home" }, context: context })
      .then(function (d) {
        var r = d.result;
        container.textContent = "";
        if (!r || !(r.hero || []).length) {
          container.setAttribute("data-tailor-state", "empty");
          return null;
        }
        container.classList.add("tailor-landing");
        container.setAttribute("data-medium", r.medium || "");
        if (r.banner) {
          container.appendChild(el("h2", "tailor-title", r.banner.title || ""));
          if (r.banner.text) container.appendChild(el("p", "tailor-landing-text", r.banner.text));
        }
        if (r.why) container.appendChild(el("p", "tailor-explain tailor-landing-why", r.why));
        if (r.offer) {
          var offer = el("div", "tailor-landing-offer", r.offer.title || "");
          offer.setAttribute("data-offer", r.offer.name || "");
          container.appendChild(offer);
        }
        var list = el("div", "tailor-items"), shown = [];
        /* The hero is the page's first widget: the widgets after it leave
           its items out (recommend's exclude). */
        r.hero.forEach(function (item) {
          var card = self.itemCard(item, opts);
          if (!card) return;
          list.appendChild(card);
          shown.push({ id: item.id });
        });
        container.appendChild(list);
        container.hidden = false;
        container.setAttribute("data-tailor-state", "ready");
        self.track("rec_shown", { name: "landing", items: shown, props: { strategy: d.strategy } });
        return r;
      })
      .catch(function (err) {
        container.setAttribute("data-tailor-state", "error");
        self.onError(err);
        return null;
      });
  };

  /*
   * Zero-party data: what the visitor tells the shop on purpose.  These are
   * sent whatever the analytics choice (the server keeps them too: they
   * are not tracking), as the visitor's answer to a question they chose to
   * answer.
   */

  /* Send one quiz answer (ids from the `quiz` decision).  Resolves once
     kept; rejects with the server's message when the strategy does not
     offer that quiz, question or answer (nothing is changed then). */
  Tailor.prototype.answer = function (quiz, question, answer) {
    var ev = Object.assign({ type: "quiz_answer" }, this.who(),
                           { props: { quiz: quiz, question: question, answer: answer } });
    return this.send(ev, true);
  };

  /* Take back a preference (its key, as ctx.customer.prefs names it). */
  Tailor.prototype.removePref = function (key) {
    var ev = Object.assign({ type: "pref_removed" }, this.who(), { props: { key: key } });
    return this.send(ev, true);
  };

  /* What the visitor told the shop: {key: {value, source, time}}. */
  Tailor.prototype.prefs = function () {
    var who = this.who(), body = { anon: who.anon };
    if (who.customer) body.customer = who.customer;
    return this.request("/v1/prefs", body).then(function (r) { return r.prefs || {}; });
  };

  /* The quiz as the strategy defines it: the `quiz` decision's result
     ({id, title, questions, answered}), or null when it has none. */
  Tailor.prototype.quizDefinition = function (quiz) {
    return this.ask("quiz", quiz ? { context: { quiz: quiz } } : {})
      .then(function (d) { return d.result || null; });
  };

  function quizError(node, err) {
    node.textContent = err ? "Not saved: " + (err.message || err) : "";
    node.hidden = !err;
  }

  /*
   * The guided-selling quiz in `container`: the title and questions of the
   * quiz the strategy defines (opts.quiz: its id; the strategy's default
   * when none), each answer a button, with what the visitor answered
   * before marked.  A click sends the answer; one the server refuses (the
   * quiz changed since the page was drawn) shows its error under the
   * question and changes nothing.  opts.onAnswer(question, answer) after
   * each kept answer.  Resolves to the quiz, or null.
   */
  Tailor.prototype.quiz = function (container, opts) {
    var self = this;
    opts = opts || {};
    container.setAttribute("data-tailor-state", "loading");
    return this.quizDefinition(opts.quiz).then(function (q) {
      container.textContent = "";
      if (!q || !(q.questions || []).length) {
        container.hidden = true;
        container.setAttribute("data-tailor-state", "empty");
        return null;
      }
      container.classList.add("tailor-quiz");
      container.setAttribute("data-quiz", q.id || opts.quiz || "");
      if (q.title) container.appendChild(el("h2", "tailor-title", q.title));
      var answered = q.answered || {};
      q.questions.forEach(function (question) {
        var box = el("fieldset", "tailor-quiz-question");
        box.setAttribute("data-question", question.id);
        box.appendChild(el("legend", null, question.text || question.id));
        var error = el("p", "tailor-quiz-error");
        error.setAttribute("role", "alert");
        error.hidden = true;
        var buttons = [];
        (question.answers || []).forEach(function (a) {
          var b = el("button", "tailor-quiz-answer", a.text || a.id);
          b.type = "button";
          b.setAttribute("data-answer", a.id);
          b.setAttribute("aria-pressed", String(answered[question.id] === a.id));
          b.addEventListener("click", function () {
            buttons.forEach(function (o) { o.disabled = true; });
            self.answer(q.id, question.id, a.id).then(function () {
              quizError(error, null);
              buttons.forEach(function (o) { o.setAttribute("aria-pressed", String(o === b)); });
              if (opts.onAnswer) opts.onAnswer(question.id, a.id);
            }, function (err) {
              quizError(error, err);
              self.onError(err);
            }).then(function () { buttons.forEach(function (o) { o.disabled = false; }); });
          });
          buttons.push(b);
          box.appendChild(b);
        });
        box.appendChild(error);
        container.appendChild(box);
      });
      container.hidden = false;
      container.setAttribute("data-tailor-state", "ready");
      return q;
    }).catch(function (err) {
      container.setAttribute("data-tailor-state", "error");
      self.onError(err);
      return null;
    });
  };

  /* For a preference key, the question whose answers set it, and the
     answer that gives `value`. */
  function questionFor(q, key) {
    var found = null;
    ((q && q.questions) || []).forEach(function (question) {
      (question.answers || []).forEach(function (a) {
        if (!found && a.sets && key in a.sets) found = question;
      });
    });
    return found;
  }
  function answerFor(question, key, value) {
    return ((question && question.answers) || []).filter(function (a) {
      return a.sets && String(a.sets[key]) === value;
    })[0] || null;
  }

  /*
   * A preference centre in `container`: each preference the visitor gave,
   * with where it came from ("quiz:fit") and when, a choice among the
   * quiz's answers to change it, and a button to remove it.  opts.quiz:
   * the quiz whose answers are offered (the strategy's default when
   * none); opts.onChange() after a change or a removal, once the centre is
   * drawn again.  Resolves to the preferences shown.
   */
  Tailor.prototype.preferences = function (container, opts) {
    var self = this;
    opts = opts || {};
    container.setAttribute("data-tailor-state", "loading");
    return Promise.all([this.prefs(), this.quizDefinition(opts.quiz).catch(function () { return null; })])
      .then(function (got) {
        var prefs = got[0], q = got[1];
        container.textContent = "";
        container.classList.add("tailor-prefs");
        container.appendChild(el("h2", "tailor-title", opts.title || "Your preferences"));
        var error = el("p", "tailor-quiz-error");
        error.setAttribute("role", "alert");
        error.hidden = true;
        var keys = Object.keys(prefs).sort();
        if (!keys.length) container.appendChild(el("p", "tailor-prefs-empty", "You have not told us anything yet."));
        var list = el("ul", "tailor-prefs-list");
        function changed(p) {
          return p.then(function () {
            return self.preferences(container, opts);
          }).then(function (r) {
            if (opts.onChange) opts.onChange();
            return r;
          }, function (err) {
            quizError(error, err);
            self.onError(err);
          });
        }
        keys.forEach(function (key) {
          var p = prefs[key], question = questionFor(q, key), current = answerFor(question, key, p.value);
          var row = el("li", "tailor-pref");
          row.setAttribute("data-pref", key);
          row.setAttribute("data-value", p.value);
          row.setAttribute("data-source", p.source || "");
          row.setAttribute("data-time", String(p.time || ""));
          row.appendChild(el("span", "tailor-pref-key", question ? question.text : key));
          row.appendChild(el("strong", "tailor-pref-value", current ? current.text : p.value));
          var when = p.time ? new Date(p.time).toLocaleDateString() : "";
          var from = q && p.source === "quiz:" + q.id && q.title ? "\u201c" + q.title + "\u201d"
                     : (p.source || "").replace(/^quiz:/, "quiz ");
          row.appendChild(el("span", "tailor-pref-source", "from " + from + (when ? ", " + when : "")));
          if (question) {
            var select = el("select", "tailor-pref-change");
            select.setAttribute("aria-label", "Change " + key);
            question.answers.forEach(function (a) {
              var o = el("option", null, a.text || a.id);
              o.value = a.id;
              o.selected = a === current;
              select.appendChild(o);
            });
            select.addEventListener("change", function () {
              changed(self.answer(q.id, question.id, select.value));
            });
            row.appendChild(select);
          }
          var remove = el("button", "tailor-pref-remove", "Remove");
          remove.type = "button";
          remove.addEventListener("click", function () { changed(self.removePref(key)); });
          row.appendChild(remove);
          list.appendChild(row);
        });
        container.appendChild(list);
        container.appendChild(error);
        container.hidden = false;
        container.setAttribute("data-tailor-state", "ready");
        return prefs;
      })
      .catch(function (err) {
        container.setAttribute("data-tailor-state", "error");
        self.onError(err);
        return null;
      });
  };

  function defaultCard(item, product) {
    var card = el("a", "tailor-card");
    card.href = product.url || "#";
    var img = el("img", "tailor-img");
    img.src = product.image || "";
    img.alt = product.name || item.id;
    img.loading = "lazy";
    card.appendChild(img);
    card.appendChild(el("span", "tailor-name", product.name || item.id));
    if (product.price != null) card.appendChild(el("span", "tailor-price", product.priceText || String(product.price)));
    if (item.explain) card.appendChild(el("span", "tailor-explain", item.explain));
    return card;
  }

  /*
   * Popups.  On a desktop, leaving the page through its top edge is an
   * exit intent; on a mobile, coming back to a page that was hidden is a
   * chance to catch someone who switched away.  Either way the event is
   * stored first (so the strategy sees it in the session), then the popup
   * strategy is asked with context.trigger, and its answer is shown.
   * What was shown is reported as popup_shown with props.coupon (the
   * popup's own code), which stops further popups this session.
   * opts.timeOnPage (seconds) asks with trigger "time_on_page" once the
   * page has been open that long (the shipped strategy's email capture).
   * opts.render(popup, close) draws a popup yourself; opts.onShow(popup).
   * A popup of kind "email_capture" is drawn as a form: the incentive,
   * the address field, the consent text, sent with subscribe().
   */
  Tailor.prototype.watchPopups = function (opts) {
    var self = this;
    var loaded = Date.now(), hiddenAt = 0;
    this.popupOptions = opts || {};
    if (this.popupOptions.timeOnPage > 0) {
      var after = this.popupOptions.timeOnPage;
      setTimeout(function () { self.askPopup("time_on_page", { seconds: after }); }, after * 1000);
    }
    if (this.device === "desktop") {
      document.addEventListener("mouseout", function (e) {
        // Out of the window (no element entered) through the top edge.
        if (e.relatedTarget || e.clientY > 0 || Date.now() - loaded < EXIT_INTENT_MIN_MS) return;
        self.askPopup("exit_intent");
      });
    } else {
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "hidden") {
          hiddenAt = Date.now();
        } else if (hiddenAt) {
          var seconds = Math.round((Date.now() - hiddenAt) / 1000);
          hiddenAt = 0;
          self.askPopup("page_hidden", { hidden_seconds: seconds });
        }
      });
    }
  };

  /* Ask the popup strategy about `trigger` (with what it needs to know in
     `extra`: hidden_seconds, seconds, cart_value) and show its answer.
     Resolves to the popup shown, or null. */
  Tailor.prototype.askPopup = function (trigger, extra) {
    var self = this;
    if (this.asking || document.querySelector(".tailor-popup")) return Promise.resolve(null);
    this.asking = true;
    var context = Object.assign({ trigger: trigger }, extra || {});
    // The two moments that are events of their own are stored first.
    var stored = POPUP_EVENTS.indexOf(trigger) >= 0
      ? this.track(trigger, { props: extra || {} }) : Promise.resolve();
    return stored
      .then(function () { return self.ask("popup", { context: context }); })
      .then(function (d) {
        if (d && d.result) {
          // Which strategy chose it, for the console's attribution.
          if (d.strategy && !d.result.strategy) d.result.strategy = d.strategy;
          self.showPopup(d.result, self.popupOptions);
        }
        return (d && d.result) || null;
      })
      .catch(function (err) { self.onError(err); return null; })
      .then(function (popup) { self.asking = false; return popup; });
  };

  /*
   * Email capture (docs/server.md, "Email capture"): hand on the address a
   * visitor typed, with the consent text they were shown word for word.
   * fields: purpose, text, source (the email_capture popup's purpose,
   * consent_text, source).  Resolves to {status: "pending", expires} once
   * the confirmation email is on its way; rejects with the server's
   * message (a malformed address, ...).  Nothing is kept until the visitor
   * follows the link in that email (double opt-in).
   */
  Tailor.prototype.subscribe = function (email, fields) {
    var who = this.who(), body = { email: email, anon: who.anon };
    if (proves(load("customer_token"), who.customer)) { body.customer = who.customer; delete body.anon; }
    ["purpose", "text", "source"].forEach(function (k) { if (fields && fields[k] != null) body[k] = fields[k]; });
    return this.request("/v1/subscribe", body);
  };

  /* Whether a customer token ("<customer>.<expiry>.<signature>",
     docs/server.md) names `customer` and has not expired.  Without such a
     proof the server takes a request as the anonymous visitor's, and
     refuses a subscribe that names the customer: a token kept past its
     expiry, or a customer given without one, refused every address. */
  function proves(token, customer) {
    if (!token || !customer) return false;
    var sig = token.lastIndexOf("."), exp = token.lastIndexOf(".", sig - 1);
    return exp > 0 && token.slice(0, exp) === customer &&
      Number(token.slice(exp + 1, sig)) * 1000 > Date.now();
  }

  /* The inside of an email_capture popup: the incentive, a field, the
     consent text, and what the server said. */
  function captureForm(self, popup) {
    var form = el("form", "tailor-capture");
    form.noValidate = true; // the server says what is wrong, in words
    if (popup.incentive && popup.incentive.text) form.appendChild(el("p", "tailor-capture-incentive", popup.incentive.text));
    var input = el("input", "tailor-capture-email");
    input.type = "email";
    input.name = "email";
    input.placeholder = "you@example.com";
    input.setAttribute("aria-label", "Your email address");
    input.autocomplete = "email";
    form.appendChild(input);
    var consent = el("p", "tailor-capture-consent", popup.consent_text || "");
    form.appendChild(consent);
    var error = el("p", "tailor-capture-error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    form.appendChild(error);
    var send = el("button", "tailor-popup-cta", "Subscribe");
    send.type = "submit";
    form.appendChild(send);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      send.disabled = true;
      self.subscribe(input.value, { purpose: popup.purpose, text: popup.consent_text, source: popup.source })
        .then(function () {
          var done = el("p", "tailor-capture-done",
            "Almost there: confirm your address with the link we just emailed to " + input.value.trim() + ".");
          done.setAttribute("role", "status");
          form.replaceWith(done);
          self.track("popup_clicked", { name: popup.name, props: { strategy: popup.strategy } });
        }, function (err) {
          error.textContent = err.message || String(err);
          error.hidden = false;
          send.disabled = false;
        });
    });
    return form;
  }

  /* Show a popup the strategy chose and report it. */
  Tailor.prototype.showPopup = function (popup, opts) {
    var self = this;
    opts = opts || {};
    var overlay = el("div", "tailor-popup");
    overlay.setAttribute("data-popup", popup.name || "");
    function close(how) {
      overlay.remove();
      if (how) self.track(how, { name: popup.name, props: { strategy: popup.strategy } });
    }
    if (opts.render) {
      overlay.appendChild(opts.render(popup, close));
    } else {
      var box = el("div", "tailor-popup-box");
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
      var x = el("button", "tailor-popup-close", "\u00d7");
      x.setAttribute("aria-label", "Close");
      x.addEventListener("click", function () { close("popup_dismissed"); });
      box.appendChild(x);
      var percent = popup.percent || (popup.incentive && popup.incentive.percent);
      if (percent) box.appendChild(el("div", "tailor-popup-badge", percent + "% off"));
      else if (popup.free_shipping) box.appendChild(el("div", "tailor-popup-badge", "Free shipping"));
      box.appendChild(el("h2", "tailor-popup-title", popup.title || "A little something for you"));
      if (popup.message) box.appendChild(el("p", "tailor-popup-message", popup.message));
      if (popup.coupon) {
        var code = el("div", "tailor-popup-code");
        code.appendChild(el("span", null, "Your code"));
        code.appendChild(el("strong", null, popup.coupon));
        box.appendChild(code);
      }
      if (popup.kind === "email_capture") {
        box.appendChild(captureForm(self, popup));
      } else {
        var ok = el("button", "tailor-popup-cta", popup.coupon ? "Use my code" : "Continue shopping");
        ok.addEventListener("click", function () {
          if (popup.coupon && navigator.clipboard) navigator.clipboard.writeText(popup.coupon).catch(function () {});
          close("popup_clicked");
        });
        box.appendChild(ok);
      }
      overlay.appendChild(box);
      overlay.addEventListener("click", function (e) { if (e.target === overlay) close("popup_dismissed"); });
    }
    document.body.appendChild(overlay);
    this.track("popup_shown", { name: popup.name, props: { coupon: popup.coupon, strategy: popup.strategy } });
    if (opts.onShow) opts.onShow(popup);
  };

  var STYLES =
    ".tailor-items{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:16px}" +
    ".tailor-card{display:flex;flex-direction:column;gap:4px;color:inherit;text-decoration:none}" +
    ".tailor-img{width:100%;aspect-ratio:1;object-fit:cover;border-radius:8px;background:#f4f1ec}" +
    ".tailor-name{font-weight:600}.tailor-explain{font-size:.82em;color:#5d6470}" +
    ".tailor-landing-offer{display:inline-block;margin:0 0 12px;padding:6px 12px;border-radius:999px;" +
    "background:#f4f1ec;font-weight:600}" +
    ".tailor-popup{position:fixed;inset:0;background:rgba(20,24,31,.55);display:flex;" +
    "align-items:center;justify-content:center;z-index:2147483000}" +
    ".tailor-popup-box{position:relative;background:#fff;border-radius:14px;padding:32px;" +
    "max-width:380px;text-align:center;box-shadow:0 20px 60px rgba(0,0,0,.3)}" +
    ".tailor-popup-close{position:absolute;top:8px;right:12px;border:0;background:none;" +
    "font-size:26px;cursor:pointer;color:#888}" +
    ".tailor-popup-code{margin:16px 0;padding:10px;border:2px dashed #c9c2b5;border-radius:8px;" +
    "display:flex;justify-content:space-between;align-items:center;gap:12px}" +
    ".tailor-popup-code strong{white-space:nowrap}" +
    ".tailor-capture{display:flex;flex-direction:column;gap:10px;margin-top:14px;text-align:left}" +
    ".tailor-capture-email{padding:10px;border:1px solid #c9c2b5;border-radius:8px;font:inherit}" +
    ".tailor-capture-consent{font-size:.8em;color:#5d6470;margin:0}" +
    ".tailor-capture-error{color:#b3261e;font-size:.9em;margin:0}" +
    ".tailor-popup-cta{border:0;border-radius:8px;padding:12px 20px;font-weight:600;cursor:pointer}" +
    ".tailor-quiz-question{border:0;margin:0 0 14px;padding:0}.tailor-quiz-question legend{font-weight:600;margin-bottom:6px}" +
    ".tailor-quiz-answer{margin:0 8px 8px 0;padding:7px 14px;border:1px solid #c9c2b5;border-radius:999px;" +
    "background:#fff;cursor:pointer;font:inherit}.tailor-quiz-answer[aria-pressed=true]{background:#1f2430;color:#fff}" +
    ".tailor-quiz-error{color:#b3261e;font-size:.9em}" +
    ".tailor-prefs-list{list-style:none;padding:0;margin:0}.tailor-pref{display:flex;flex-wrap:wrap;gap:6px 12px;" +
    "align-items:center;padding:8px 0;border-bottom:1px solid #eee}.tailor-pref-source{font-size:.82em;color:#5d6470}";

  function injectStyles() {
    if (document.getElementById("tailor-styles")) return;
    var style = el("style");
    style.id = "tailor-styles";
    style.textContent = STYLES;
    // First in <head>, so the shop's own stylesheet wins.
    document.head.insertBefore(style, document.head.firstChild);
  }

  global.Tailor = { init: function (options) { return new Tailor(options); }, version: "0.1.0" };
})(window);
