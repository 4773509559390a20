/*
 * console.js: the merchant console's pages.  Everything comes from the
 * admin API (/admin/api/..., docs/server.md); the session cookie is sent
 * by the browser, and every change carries the session's CSRF token.
 * Plain JavaScript, no build step; charts with the vendored uPlot, or a
 * few lines of canvas where uPlot has no chart of the kind (bars, CIs).
 */
(function () {
  "use strict";
  var session = null;
  var timer = null;
  var page = document.getElementById("page");

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (attrs[k] === null || attrs[k] === undefined) continue;
      if (k === "text") e.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function money(v) { return (v || 0).toFixed(2); }
  function pct(v) { return ((v || 0) * 100).toFixed(1) + "%"; }
  /* Every time the console shows is UTC, as the API, the logs and the
     CLI give them: the tables say so, and the charts' axes (uPlot) show
     UTC too rather than the browser's zone. */
  function when(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "-"; }
  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }

  function api(path, opts) {
    opts = opts || {};
    var init = { method: opts.method || "GET", credentials: "same-origin", headers: {} };
    if (opts.body !== undefined) {
      init.body = JSON.stringify(opts.body);
      init.headers["Content-Type"] = "application/json";
    }
    if (init.method !== "GET" && session && session.csrf) init.headers["X-CSRF-Token"] = session.csrf;
    return fetch("/admin/api/" + path, init).then(function (r) {
      return r.json().then(function (j) {
        if (r.status === 401) { showLogin(); throw new Error("login needed"); }
        if (!r.ok) throw new Error((j.error && j.error.message) || r.statusText);
        return j;
      });
    });
  }

  function card(key, label, value, raw) {
    return el("div", { class: "card", "data-k": key, "data-v": raw === undefined ? String(value) : String(raw) },
      [el("div", { class: "v", text: String(value) }), el("div", { class: "k", text: label })]);
  }
  function table(head, rows, numeric) {
    return el("table", {}, [
      el("tr", {}, head.map(function (h, i) { return el("th", { class: numeric && numeric[i] ? "n" : "", text: h }); }))
    ].concat(rows.map(function (r) {
      return el("tr", {}, r.map(function (c, i) {
        return c instanceof Node ? el("td", {}, [c]) : el("td", { class: numeric && numeric[i] ? "n" : "", text: c == null ? "" : String(c) });
      }));
    })));
  }
  function fail(e) { page.appendChild(el("p", { class: "error", text: String(e.message || e) })); }

  /* A bar chart on a canvas: labels and values. */
  function bars(labels, values, title) {
    var c = el("canvas", { width: 760, height: 40 + 28 * labels.length, class: "bars", "aria-label": title });
    var g = c.getContext("2d"), max = Math.max.apply(null, values.concat([1e-9]));
    g.font = "13px system-ui, sans-serif";
    g.fillStyle = "#1d2330";
    g.fillText(title, 8, 18);
    labels.forEach(function (l, i) {
      var y = 32 + 28 * i, w = 380 * (values[i] / max);
      g.fillStyle = "#1d2330"; g.fillText(l, 8, y + 15);
      g.fillStyle = "#6aa6ff"; g.fillRect(220, y + 2, Math.max(w, 1), 18);
      g.fillStyle = "#1d2330"; g.fillText(money(values[i]), 226 + w, y + 15);
    });
    return el("div", { class: "chart" }, [c]);
  }

  /*
   * Pages.
   */
  var pages = {};

  pages.overview = function () {
    return api("overview").then(function (o) {
      var mins = o.minutes, last = mins[mins.length - 2] || mins[mins.length - 1];
      var lat = o.latency_ms || {};
      var errors = o.errors.reduce(function (s, e) { return s + e.count; }, 0);
      page.textContent = "";
      page.appendChild(el("h1", { text: "Overview" }));
      page.appendChild(el("div", { class: "cards" }, [
        card("events_per_s", "events/s (last whole minute)", (last.events / 60).toFixed(2)),
        card("decisions_per_s", "decisions/s (last whole minute)", (last.decisions / 60).toFixed(2)),
        card("p50", "decision p50 ms", lat.samples ? lat.p50.toFixed(2) : "-", lat.p50),
        card("p90", "decision p90 ms", lat.samples ? lat.p90.toFixed(2) : "-", lat.p90),
        card("p99", "decision p99 ms", lat.samples ? lat.p99.toFixed(2) : "-", lat.p99),
        card("fallbacks", "decisions that fell back", errors),
        card("events_total", "events in the store", o.store.events_total),
        card("items", "catalog items", o.store.items),
        card("customers", "customers", o.store.customers),
        card("outbox", "outbox rows", o.store.outbox),
        card("reload", "last reload: " + when(o.reload.at), o.reload.ok ? "ok" : "refused", o.reload.ok)
      ]));
      var events = 0, decisions = 0;
      mins.forEach(function (m) { events += m.events; decisions += m.decisions; });
      page.appendChild(el("p", { class: "muted", "data-k": "hour", "data-events": events, "data-decisions": decisions,
        text: "Last hour: " + events + " events, " + decisions + " decisions. " + o.reload.text }));
      var box = el("div", { class: "chart", id: "rate-chart" });
      page.appendChild(box);
      new uPlot({
        title: "per second, by minute (last hour, UTC)", tzDate: utc, width: Math.min(1100, page.clientWidth - 20), height: 260,
        series: [{}, { label: "events/s", stroke: "#2f6fdb" }, { label: "decisions/s", stroke: "#e07b00" },
                 { label: "errors/s", stroke: "#b42318" }]
      }, [mins.map(function (m) { return m.t; }), mins.map(function (m) { return m.events / 60; }),
          mins.map(function (m) { return m.decisions / 60; }), mins.map(function (m) { return m.errors / 60; })], box);
      page.appendChild(el("h2", { text: "Errors by handler and strategy" }));
      page.appendChild(o.errors.length ? table(["handler", "strategy", "count", "last", "when"], o.errors.map(function (e) {
        return [e.handler, e.strategy, e.count, e.last, when(e.at)];
      }), [0, 0, 1]) : el("p", { class: "muted", text: "No decision served its fallback since the server started." }));
      page.appendChild(el("p", { class: "muted", text: "Strategy errors in all (decisions, triggers, deliveries) since start: " + o.process.strategy_errors }));
    });
  };
  pages.overview.poll = 5000;

  pages.revenue = function () {
    var hours = Number(sessionStorage.getItem("window_hours") || 24);
    return api("revenue?window_hours=" + encodeURIComponent(hours)).then(function (r) {
      /* The window the server counted with, not the one typed: it takes
         whole hours, kept within 1 hour and 90 days, and reads anything
         else (0.5, empty) as its default, 24; the page showed the typed
         value beside figures for another window. */
      hours = r.window_ms / 3600000;
      sessionStorage.setItem("window_hours", hours);
      page.textContent = "";
      page.appendChild(el("h1", { text: "Revenue attribution" }));
      var input = el("input", { type: "number", min: 1, max: 2160, step: 1, value: hours, id: "window" });
      page.appendChild(el("div", { class: "row" }, ["Window: an order counts for the last click within",
        input, "hours before it (last click).",
        el("button", { text: "Apply", onclick: function () { sessionStorage.setItem("window_hours", input.value); show(); } })]));
      page.appendChild(el("div", { class: "cards" }, [
        card("orders", "orders", r.total.orders),
        card("revenue", "revenue", money(r.total.revenue), r.total.revenue),
        card("attributed_orders", "orders after a click", r.attributed.orders),
        card("attributed_revenue", "revenue after a click", money(r.attributed.revenue), r.attributed.revenue),
        card("rest_revenue", "the rest of revenue", money(r.rest.revenue), r.rest.revenue),
        card("sessions_share", "sessions that saw personalization (" + r.sessions.personalized + " of " + r.sessions.total + ")",
             pct(r.sessions.share), r.sessions.share)
      ]));
      var by = {};
      r.groups.forEach(function (g) { by[g.source] = (by[g.source] || 0) + g.revenue; });
      var labels = Object.keys(by).sort();
      page.appendChild(bars(labels.concat(["rest"]), labels.map(function (l) { return by[l]; }).concat([r.rest.revenue]), "Revenue by source"));
      page.appendChild(el("h2", { text: "By source, strategy and widget" }));
      page.appendChild(table(["source", "strategy", "widget", "shown", "clicks", "orders", "revenue"],
        r.groups.map(function (g) { return [g.source, g.strategy, g.widget, g.shown, g.clicks, g.orders, money(g.revenue)]; }),
        [0, 0, 0, 1, 1, 1, 1]));
    });
  };

  /* Each variant's difference to control with its 95% interval, drawn. */
  function intervals(ex, field, title) {
    var vs = ex.variants.filter(function (v) { return v[field]; });
    var c = el("canvas", { width: 640, height: 50 + 30 * Math.max(vs.length, 1), class: "ci" });
    var g = c.getContext("2d");
    g.font = "13px system-ui, sans-serif";
    g.fillStyle = "#1d2330"; g.fillText(title, 8, 16);
    var lo = 0, hi = 0;
    vs.forEach(function (v) { lo = Math.min(lo, v[field][0]); hi = Math.max(hi, v[field][1]); });
    if (hi - lo < 1e-12) { hi = 1; lo = -1; }
    var x = function (d) { return 200 + 400 * (d - lo) / (hi - lo); };
    g.strokeStyle = "#98a2b3"; g.beginPath(); g.moveTo(x(0), 24); g.lineTo(x(0), c.height - 6); g.stroke();
    vs.forEach(function (v, i) {
      var y = 40 + 30 * i, ci = v[field];
      g.fillStyle = "#1d2330"; g.fillText(v.variant, 8, y + 4);
      g.strokeStyle = ci[0] > 0 || ci[1] < 0 ? "#147a3d" : "#2f6fdb"; g.lineWidth = 3;
      g.beginPath(); g.moveTo(x(ci[0]), y); g.lineTo(x(ci[1]), y); g.stroke();
      g.fillStyle = g.strokeStyle; g.fillRect(x((ci[0] + ci[1]) / 2) - 3, y - 3, 6, 6);
    });
    if (!vs.length) g.fillText("no variant beside control yet", 200, 44);
    return el("div", { class: "chart" }, [c]);
  }

  pages.experiments = function () {
    return api("experiments").then(function (list) {
      page.textContent = "";
      page.appendChild(el("h1", { text: "Experiments" }));
      if (!list.length) page.appendChild(el("p", { class: "muted", text: "No experiment has exposures yet." }));
      list.forEach(function (ex) {
        page.appendChild(el("h2", { text: ex.experiment + " (control: " + ex.control + ", outcomes within " + ex.window_days + " days)" }));
        page.appendChild(table(["variant", "exposures", "conversion", "revenue/visitor", "conv. uplift", "conv. diff 95% CI", "p", "significant"],
          ex.variants.map(function (v) {
            var ci = v.conversion_diff_ci95;
            return [v.variant, v.exposures, pct(v.conversion), money(v.revenue_per_visitor),
                    v.conversion_uplift == null ? "-" : pct(v.conversion_uplift),
                    ci ? "[" + (ci[0] * 100).toFixed(2) + ", " + (ci[1] * 100).toFixed(2) + "] pp" : "-",
                    v.conversion_p_value == null ? "-" : v.conversion_p_value.toFixed(4),
                    v.conversion_p_value == null ? "-" : v.conversion_p_value < 0.05 ? "yes" : "no"];
          }), [0, 1, 1, 1, 1, 1, 1, 0]));
        page.appendChild(intervals(ex, "conversion_diff_ci95", "Conversion difference to control, 95% CI"));
        page.appendChild(intervals(ex, "revenue_diff_ci95", "Revenue per visitor difference to control, 95% CI"));
      });
    });
  };

  pages.outbox = function () {
    return api("outbox").then(function (o) {
      page.textContent = "";
      page.appendChild(el("h1", { text: "Outbox" }));
      var states = ["scheduled", "failed", "sending", "sent", "cancelled", "dead"];
      page.appendChild(el("div", { class: "cards" }, states.map(function (s) { return card("outbox_" + s, s, o.totals[s] || 0); })));
      page.appendChild(el("h2", { text: "By trigger" }));
      page.appendChild(table(["trigger", "channel"].concat(states), Object.keys(o.triggers).map(function (t) {
        var r = o.triggers[t];
        return [t, r.channel].concat(states.map(function (s) { return r[s] || 0; }));
      }), [0, 0, 1, 1, 1, 1, 1, 1]));
      var act = session && session.act;
      var retryable = { failed: 1, dead: 1, cancelled: 1 };
      var purgeState = el("select", { id: "purge-state" }, ["dead", "sent", "cancelled"].map(function (s) { return el("option", { value: s, text: s }); }));
      if (act) page.appendChild(el("div", { class: "row" }, [
        el("button", { id: "retry-dead", text: "Retry every dead row", onclick: function () {
          api("outbox/retry", { method: "POST", body: {} }).then(function (r) { note("retried " + r.changed); }, fail);
        } }),
        "Purge", purgeState, "rows",
        el("button", { id: "purge", text: "Purge", onclick: function () {
          api("outbox/purge", { method: "POST", body: { state: purgeState.value, older_than_ms: 0 } }).then(function (r) { note("purged " + r.purged); }, fail);
        } })]));
      page.appendChild(el("h2", { text: "Newest rows" }));
      page.appendChild(table(["key", "trigger", "customer", "due", "state", "attempts", "last error", ""], o.rows.map(function (r) {
        var b = el("span", {}, [
          session && session.pii ? el("button", { text: "Preview", class: "preview-btn", onclick: function () { preview(r.key); } }) : null,
          /* Retry is for a row that failed, went dead or was cancelled:
             the store's retry makes a row due now, so on a scheduled one
             it sent the cart email at once instead of after its delay. */
          act && retryable[r.state] ? el("button", { text: "Retry", class: "retry-btn", onclick: function () {
            api("outbox/retry", { method: "POST", body: { key: r.key } }).then(function (x) { note("retried " + x.changed); }, fail);
          } }) : null]);
        return [r.key, r.template, r.customer, when(r.due), r.state, r.attempts, r.last_error, b];
      }), [0, 0, 0, 0, 0, 1]));
      page.appendChild(el("div", { id: "message" }));
    });
  };
  function note(text) {
    sessionStorage.setItem("note", text);
    show();
  }
  /* One message as it would go out: its channel renders it as delivery
     hands it (subject and bodies of an email), with what the strategy and
     the send-time checks would say now. */
  function preview(key) {
    api("outbox/message?key=" + encodeURIComponent(key)).then(function (m) {
      var box = document.getElementById("message");
      var r = m.rendered || {}, p = r.parts || {};
      box.textContent = "";
      var verdict = r.verdict === "send" ? "would be sent now" : r.verdict === "cancel" ? "would be cancelled now: " + r.why
        : m.state + (m.last_error ? ": " + m.last_error : "");
      var kids = [
        el("div", { class: "muted", text: "To: " + (r.to || m.to || m.customer || "-") + " · via " + m.channel + " · " + m.state + " · due " + when(m.due) }),
        el("p", { id: "message-verdict", class: r.verdict === "cancel" ? "bad" : "ok", text: verdict })];
      if (r.parts) {
        if (p.subject !== undefined) kids.push(el("h2", { id: "message-subject", text: p.subject }));
        if (p.from) kids.push(el("div", { class: "muted", text: "From: " + p.from }));
        /* The HTML part as a page of its own in a sandbox (no script, an
           opaque origin; the server's answer says so too). */
        if (p.html !== undefined) kids.push(el("iframe", { id: "message-html", sandbox: "", title: "HTML part",
          src: "/admin/api/outbox/message.html?key=" + encodeURIComponent(key) }));
        if (p.text !== undefined) kids.push(el("details", { open: p.html === undefined ? "" : null }, [
          el("summary", { text: "Text part" }), el("pre", { id: "message-text", text: p.text })]));
        if (p.body !== undefined) kids.push(el("pre", { id: "message-body", text: p.body }));
      } else {
        kids.push(el("p", { class: "error", id: "message-error", text: "Not rendered: " + (r.render_error || r.why || "no preview") }));
      }
      kids.push(el("details", {}, [el("summary", { text: "Variables" }), el("pre", { text: JSON.stringify(r.vars || m.vars, null, 2) })]));
      box.appendChild(el("div", { class: "preview", id: "message-preview", "data-key": key }, kids));
    }, fail);
  }

  /* Audiences and segments: sizes now and over time, a sample of members
     (contact details only for a role that may see them), the download. */
  pages.audiences = function () {
    return api("audiences").then(function (a) {
      var all = a.audiences.concat(a.segments);
      var of = sessionStorage.getItem("members-of");
      if (!all.some(function (x) { return x.key === of; })) of = all.length ? all[0].key : "";
      var chosen = all.filter(function (x) { return x.key === of; })[0];
      var q = !chosen ? null : chosen.id ? "segment=" + chosen.id
        : "audience=" + encodeURIComponent(chosen.audience) + "&days=" + chosen.days;
      return (q ? api("audiences/members?limit=20&" + q) : Promise.resolve(null)).then(function (m) {
        page.textContent = "";
        page.appendChild(el("h1", { text: "Audiences and segments" }));
        page.appendChild(el("p", { class: "muted", text: "Recency audiences (everyone seen lately is in one at most; for ad platforms: tailor audiences export) and the automatic customer segments (refitted with the value model)." }));
        page.appendChild(el("div", { class: "cards" }, a.audiences.map(function (x) {
          return card("aud_" + x.key.replace("/", "_"), x.label, x.size);
        })));
        page.appendChild(el("h2", { text: "Segments" }));
        page.appendChild(a.segments.length ? table(["segment", "name", "description", "customers"], a.segments.map(function (x) {
          return [x.id, x.name, x.description, el("span", { "data-k": x.key, "data-v": x.size, text: String(x.size) })];
        }), [1, 0, 0, 1]) : el("p", { class: "muted", text: "No segments yet: they are fitted with the value model once there are customers with orders." }));
        /* Sizes over time: the snapshots kept, then now. */
        var h = a.history, keys = all.map(function (x) { return x.key; });
        var colors = ["#2f6fdb", "#e07b00", "#147a3d", "#8e44ad", "#b42318", "#0e7490", "#a16207", "#4d7c0f", "#be185d", "#334155"];
        page.appendChild(el("h2", { text: "Sizes over time" }));
        var box = el("div", { class: "chart", id: "sizes-chart", "data-points": h.length });
        page.appendChild(box);
        new uPlot({
          title: "members, by snapshot (" + (a.snapshot_every_ms ? "every " + (a.snapshot_every_ms >= 60000
            ? Math.round(a.snapshot_every_ms / 60000) + " min" : a.snapshot_every_ms / 1000 + " s") : "none kept") + "; the last point is now)",
          tzDate: utc, width: Math.min(1100, page.clientWidth - 20), height: 300,
          series: [{}].concat(keys.map(function (k, i) { return { label: k, stroke: colors[i % colors.length] }; }))
        }, [h.map(function (p) { return p.at / 1000; })].concat(keys.map(function (k) {
          return h.map(function (p) { return p.sizes[k] === undefined ? null : p.sizes[k]; });
        })), box);
        page.appendChild(el("h2", { text: "Members" }));
        var pick = el("select", { id: "members-of" }, all.map(function (x) {
          return el("option", { value: x.key, text: x.id ? "segment " + x.id + ": " + x.name : x.label });
        }));
        pick.value = of;
        var row = [pick, el("button", { id: "members-go", text: "Show", onclick: function () {
          sessionStorage.setItem("members-of", pick.value); show();
        } })];
        if (chosen && !chosen.id && session && session.pii)
          row.push(el("a", { id: "export", href: "/admin/api/audiences/export?audience=" + encodeURIComponent(chosen.audience) + "&days=" + chosen.days,
                             download: chosen.audience + "-" + chosen.days + "-days.csv", text: "Download as CSV" }));
        page.appendChild(el("div", { class: "row" }, row));
        if (!m) return;
        var pii = m.pii;
        page.appendChild(el("p", { class: "muted", text: m.size + " members; the " + m.members.length + " last seen" +
          (pii ? "" : " (contact details need an admin login)") + ":" }));
        var t = table(["customer", "anonymous id", "last seen", "orders", "revenue"].concat(pii ? ["email", "email consent"] : []),
          m.members.map(function (x) {
            return [x.customer || "", x.anon || "", when(x.last_seen), x.orders, money(x.revenue)]
              .concat(pii ? [x.email || "", x.customer ? (x.consent_email ? "yes" : "no") : ""] : []);
          }), [0, 0, 0, 1, 1]);
        t.id = "members";
        t.setAttribute("data-of", of);
        t.setAttribute("data-size", m.size);
        page.appendChild(t);
      });
    });
  };

  pages.preview = function () {
    var f = {};
    ["customer", "anon", "source", "segment", "cart"].forEach(function (k) {
      f[k] = el("input", { id: "pv-" + k, placeholder: k, value: sessionStorage.getItem("pv-" + k) || "" });
    });
    page.textContent = "";
    page.appendChild(el("h1", { text: "Visitor preview" }));
    page.appendChild(el("p", { class: "muted", text: "What tailor would decide for this visitor on each page, with its explanations. Leave everything empty for a new visitor." }));
    page.appendChild(el("div", { class: "row" }, [f.customer, f.anon, f.source, f.segment, f.cart,
      el("button", { id: "pv-go", text: "Show", onclick: function () {
        Object.keys(f).forEach(function (k) { sessionStorage.setItem("pv-" + k, f[k].value); });
        show();
      } })]));
    var q = Object.keys(f).filter(function (k) { return f[k].value; }).map(function (k) { return k + "=" + encodeURIComponent(f[k].value); }).join("&");
    return api("preview?" + q).then(function (p) {
      var box = el("div", { id: "decisions" });
      page.appendChild(box);
      p.recommend.forEach(function (d) {
        var a = d.answer || {};
        box.appendChild(el("h2", { text: "recommend · " + d.request.page.type + (d.request.page.item ? " " + d.request.page.item : "") +
          " · " + (a.strategy || "") + (a.fallback ? " · FALLBACK: " + a.error : "") + " · " + d.ms.toFixed(1) + " ms" }));
        box.appendChild(el("div", { class: "items", "data-page": d.request.page.type }, (a.items || []).map(function (it) {
          return el("div", { class: "item" }, [el("strong", { text: it.id }), el("div", { class: "muted", text: it.explain || it.reason || "" })]);
        })));
      });
      p.decisions.forEach(function (d) {
        var a = d.answer || {};
        box.appendChild(el("h2", { text: d.request.kind + (a.fallback ? " · FALLBACK: " + a.error : "") }));
        box.appendChild(el("pre", { "data-kind": d.request.kind, text: JSON.stringify(a.result !== undefined ? a.result : a, null, 2) }));
      });
    });
  };

  pages.strategies = function () {
    var check = sessionStorage.getItem("check") === "1";
    sessionStorage.removeItem("check");
    return api(check ? "strategies/check" : "strategies").then(function (s) {
      page.textContent = "";
      page.appendChild(el("h1", { text: "Strategies" }));
      page.appendChild(el("p", {}, ["Folder ", el("code", { text: s.folder || "-" }), s.base ? " over " + s.base : "",
        " · version " + s.version + (s.on_disk ? " (the files on disk, " + s.on_disk + ", do not serve)" : "") + " · reloads " + s.generation + " · last reload " + when(s.reload.at) + ": ",
        el("span", { class: s.reload.ok ? "ok" : "bad", id: "reload", text: s.reload.ok ? "ok" : "refused" }), " " + s.reload.text]));
      page.appendChild(table(["file", "version", "bytes", "modified"], s.files.map(function (f) { return [f.file, f.version, f.bytes, when(f.modified)]; }), [0, 0, 1]));
      page.appendChild(el("h2", { text: "Handlers" }));
      page.appendChild(table(["handler", "file"], s.handlers.map(function (h) { return [h.handler, h.file]; })));
      page.appendChild(el("h2", { text: "Compile errors" }));
      page.appendChild(s.compile_errors.length ? table(["file", "error (file:line)"], s.compile_errors.map(function (e) { return [e.file, e.message]; }))
        : el("p", { class: "ok", text: "Every file compiles." }));
      page.appendChild(el("h2", { text: "Check (dry run over sample visitors)" }));
      page.appendChild(el("button", { id: "run-check", text: "Run check", onclick: function () { sessionStorage.setItem("check", "1"); show(); } }));
      if (s.check && s.check.handlers) {
        page.appendChild(el("p", { id: "check-summary", text: s.check.visitors + " visitors: " + s.check.errors + " errors, " + s.check.unknown_segments + " unknown segments, " + s.check.empty + " empty answers" }));
        page.appendChild(table(["handler", "where", "calls", "errors", "empty"], s.check.handlers.map(function (h) { return [h.name, h.where, h.calls, h.errors, h.empty]; }), [0, 0, 1, 1, 1]));
        if (s.check.problems.length) page.appendChild(table(["kind", "call", "problem (file:line)", "visitor", "count"],
          s.check.problems.map(function (p) { return [p.kind, p.call, p.text, p.visitor, p.count]; }), [0, 0, 0, 0, 1]));
      } else if (s.check) page.appendChild(el("p", { class: "error", text: s.check.error }));
      page.appendChild(el("h2", { text: "Recent errors and warnings from the engine" }));
      page.appendChild(s.log.length ? table(["when", "level", "text"], s.log.map(function (l) { return [when(l.at), l.level, l.text]; }))
        : el("p", { class: "muted", text: "None since the server started." }));
    });
  };

  /*
   * Navigation, login.
   */
  function show() {
    if (timer) { clearTimeout(timer); timer = null; }
    var name = (location.hash || "#overview").slice(1);
    if (!pages[name]) name = "overview";
    document.querySelectorAll("#nav a").forEach(function (a) { a.classList.toggle("on", a.getAttribute("href") === "#" + name); });
    var t0 = performance.now();
    document.body.setAttribute("data-page", name);
    document.body.removeAttribute("data-ready");
    pages[name]().then(function () {
      var n = sessionStorage.getItem("note");
      if (n) { sessionStorage.removeItem("note"); page.insertBefore(el("p", { class: "ok", id: "note", text: n }), page.firstChild.nextSibling); }
      document.body.setAttribute("data-ready", name);
      document.body.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
      if (pages[name].poll) timer = setTimeout(show, pages[name].poll);
    }, function (e) { if (e.message !== "login needed") fail(e); });
  }

  function showLogin() {
    session = null;
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    document.getElementById("who").textContent = "";
    page.textContent = "";
    document.getElementById("login").hidden = false;
  }

  function start() {
    fetch("/admin/api/session", { credentials: "same-origin" }).then(function (r) {
      if (r.status !== 200) return showLogin();
      return r.json().then(function (s) {
        session = s;
        document.getElementById("login").hidden = true;
        document.getElementById("nav").hidden = false;
        document.getElementById("logout").hidden = false;
        document.getElementById("who").textContent = s.role;
        show();
      });
    });
  }

  document.getElementById("login").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = "token=" + encodeURIComponent(document.getElementById("token").value);
    fetch("/admin/login", { method: "POST", credentials: "same-origin", body: body,
                            headers: { "Content-Type": "application/x-www-form-urlencoded" } })
      .then(function (r) { return r.json().then(function (j) { return [r, j]; }); })
      .then(function (rj) {
        if (!rj[0].ok) { document.getElementById("login-error").textContent = rj[1].error.message; return; }
        document.getElementById("token").value = "";
        start();
      });
  });
  /* Logging out is idempotent: a request lost on the way (a kept-alive
     connection the server closed as it was reused) is sent once more,
     and a second failure is shown, not swallowed. */
  document.getElementById("logout").addEventListener("click", function () {
    function out() {
      return fetch("/admin/logout", { method: "POST", credentials: "same-origin",
                                      headers: { "X-CSRF-Token": session ? session.csrf : "" } });
    }
    out().catch(out).then(function (r) {
      if (!r.ok) throw new Error("logout: " + r.status + " " + r.statusText);
      showLogin();
    }).catch(fail);
  });
  window.addEventListener("hashchange", function () { if (session) show(); });
  start();
})();
