/*
 * shop.js: the demo shop around tailor.js.  Everything a real shop does
 * itself lives here (its catalog, its cart, its pages); everything tailor
 * does goes through tailor.js.  The visitor switch at the top acts as one
 * of the people prepared in the sample data (examples/data/generate.py).
 */
(function () {
  "use strict";

  // The storefront token of the demo's config: public by design, it may
  // only send events and ask for decisions.
  var TOKEN = "demo-storefront-token-0001";
  // The demo's admin token, for its mailbox page only (the outbox is the
  // merchant's to read).  A real shop never puts an admin token in a page;
  // the demo serves loopback only (examples/storefront/tailor.json).
  var ADMIN_TOKEN = "demo-admin-token-not-for-production";
  var CART_KEY = "shop.cart";
  var PERSONA_KEY = "shop.persona";
  var WIDGET_K = 4;    // items in a recommendation widget
  var GRID_SIZE = 12;  // products in a tab of the home page
  var money = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });

  var products = {}, productList = [], personas = {};

  function $(sel) { return document.querySelector(sel); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  /* The cart is the shop's: [{id, qty}] in localStorage. */
  function cart() {
    try { return JSON.parse(localStorage.getItem(CART_KEY)) || []; } catch (e) { return []; }
  }
  function saveCart(lines) {
    localStorage.setItem(CART_KEY, JSON.stringify(lines));
    renderCartCount();
  }
  function renderCartCount() {
    var n = cart().reduce(function (s, l) { return s + l.qty; }, 0);
    var badge = $("#cart-count");
    if (badge) { badge.textContent = n; badge.hidden = n === 0; }
  }

  function productUrl(id) { return "product.html?id=" + encodeURIComponent(id); }

  /* One product card, for the shop's grids and tailor's widgets alike. */
  function card(p, explain) {
    var a = el("a", "card");
    a.href = productUrl(p.id);
    var img = el("img", "card-img");
    img.src = p.image;
    img.alt = p.name;
    img.loading = "lazy";
    a.appendChild(img);
    a.appendChild(el("span", "card-brand", p.brand));
    a.appendChild(el("span", "card-name", p.name));
    a.appendChild(el("span", "card-price", money.format(p.price)));
    if (explain) a.appendChild(el("span", "card-explain", explain));
    return a;
  }

  function persona() {
    var name = localStorage.getItem(PERSONA_KEY);
    return personas[name] ? name : "new";
  }

  /* Act as someone else: new ids in tailor, an empty cart, a new session,
     and the home page, where who you are shows first. */
  function switchPersona(name, t) {
    var p = personas[name];
    t.reset({ anon: p.anon, customer: p.customer, customerToken: p.customer_token });
    localStorage.setItem(PERSONA_KEY, name);
    localStorage.removeItem(CART_KEY);
    location.href = "./";
  }

  function renderHeader(t) {
    var current = persona();
    var bar = $("#persona");
    bar.appendChild(el("span", "persona-label", "Demo: act as"));
    Object.keys(personas).forEach(function (name) {
      var b = el("button", "persona-btn" + (name === current ? " active" : ""), personas[name].label);
      b.setAttribute("data-persona", name);
      b.addEventListener("click", function () { switchPersona(name, t); });
      bar.appendChild(b);
    });
    bar.appendChild(el("span", "persona-note", personas[current].note || ""));
    renderCartCount();
  }

  /* What tailor decided about this visitor, which a real shop uses without
     showing: the discount tier, the segments, the retargeting audiences,
     and the emails waiting for them (the mailbox page).  Each part says
     data-state="ready" once drawn (the browser test waits for it). */
  function tierText(r) {
    return r && r.percent ? (r.tier || "discount") + " · " + r.percent + "% off" : "none";
  }
  function renderInsight(t) {
    var bar = el("div", "insight");
    bar.id = "insight";
    $("#persona").insertAdjacentElement("afterend", bar);
    function part(name, label) {
      var box = el("span", "insight-part");
      box.appendChild(el("span", "insight-label", label));
      var value = el("span", "insight-value", "…");
      value.setAttribute("data-" + name, "");
      box.appendChild(value);
      bar.appendChild(box);
      return value;
    }
    function fill(node, text) {
      node.textContent = text;
      node.setAttribute("data-state", "ready");
    }
    var tier = part("tier", "Discount tier"), segs = part("segments", "Segments"),
        auds = part("audiences", "Audiences");
    var mail = el("a", "insight-mail", "Mailbox");
    mail.href = "mailbox.html";
    mail.id = "mailbox-link";
    bar.appendChild(mail);
    var fit = el("a", "insight-mail", "Your fit");
    fit.href = "prefs.html";
    fit.id = "fit-link";
    bar.appendChild(fit);
    return Promise.all([
      t.decide("discount").then(function (d) { fill(tier, tierText(d.result)); }),
      t.decide("visitor").then(function (d) {
        fill(segs, ((d.result && d.result.segments) || []).join(", ") || "none");
      }),
      t.decide("audiences").then(function (d) {
        var list = (d.result && d.result.audiences) || [];
        fill(auds, list.map(function (a) { return a.name + " (bid ×" + a.bid + ")"; }).join(", ") || "none");
      }),
    ]).catch(function (err) { console.warn("tailor:", err); });
  }

  function widget(t, selector, opts) {
    var node = $(selector);
    if (!node) return Promise.resolve([]);
    return t.recommend(node, Object.assign({
      k: WIDGET_K,
      render: function (item, p) { return card(p, item.explain); },
    }, opts));
  }

  /* A category's products taking turns by subcategory, so a tab shows a
     bit of everything instead of one kind of thing. */
  function mixed(list) {
    var groups = {}, order = [], out = [];
    list.forEach(function (p) {
      if (!groups[p.category]) { groups[p.category] = []; order.push(p.category); }
      groups[p.category].push(p);
    });
    for (var i = 0; out.length < list.length; i++) {
      order.forEach(function (c) { if (groups[c][i]) out.push(groups[c][i]); });
    }
    return out;
  }

  /*
   * Pages.
   */
  var pages = {};

  pages.home = function (t) {
    t.pageView({ page: "home" });
    // One after another: a widget leaves out what those before it show,
    // which one asked at the same moment cannot know (storefront.md).
    // A visit from a campaign, a search or a post: its own hero first.
    var ready = t.landing($("#landing"), { k: WIDGET_K, render: function (item, p) { return card(p, item.explain); } })
      .then(function () {
        return widget(t, "#continue", { title: "Continue shopping", page: { type: "home", widget: "continue" } });
      })
      .then(function () {
        return widget(t, "#bestsellers", { title: "Popular for you", page: { type: "home", widget: "bestsellers" } });
      });
    var tabs = $("#tabs"), grid = $("#grid");
    var tops = [];
    productList.forEach(function (p) {
      var top = p.category.split("/")[0];
      if (tops.indexOf(top) < 0) tops.push(top);
    });
    function show(top) {
      grid.textContent = "";
      Array.prototype.forEach.call(tabs.children, function (b) { b.classList.toggle("active", b.textContent === top); });
      mixed(productList.filter(function (p) { return p.category.indexOf(top + "/") === 0; }))
        .slice(0, GRID_SIZE).forEach(function (p) { grid.appendChild(card(p)); });
    }
    tops.forEach(function (top) {
      var b = el("button", "tab", top);
      b.addEventListener("click", function () { show(top); });
      tabs.appendChild(b);
    });
    var asked = new URLSearchParams(location.search).get("tab");
    show(tops.indexOf(asked) >= 0 ? asked : tops[0]);
    return ready;
  };

  pages.product = function (t) {
    var id = new URLSearchParams(location.search).get("id");
    var p = products[id];
    var main = $("#product");
    if (!p) {
      main.appendChild(el("p", "empty", "This product does not exist (any more)."));
      return Promise.resolve();
    }
    document.title = p.name + " · Trailhead";
    t.viewed(p.id);
    $("#crumbs").textContent = p.category.split("/").join(" › ");
    var img = el("img", "product-img");
    img.src = p.image;
    img.alt = p.name;
    main.appendChild(img);
    var info = el("div", "product-info");
    info.appendChild(el("div", "card-brand", p.brand));
    info.appendChild(el("h1", null, p.name));
    info.appendChild(el("div", "product-price", money.format(p.price)));
    info.appendChild(el("p", "product-meta", "Colour: " + p.color + (p.gender !== "unisex" ? " · " + p.gender + "'s fit" : "")));
    info.appendChild(el("p", "stock " + (p.in_stock ? "in" : "out"), p.in_stock ? "In stock, ships in 1–2 days" : "Out of stock"));
    var add = el("button", "btn primary", "Add to cart");
    add.id = "add-to-cart";
    add.disabled = !p.in_stock;
    add.addEventListener("click", function () {
      var lines = cart(), line = lines.filter(function (l) { return l.id === p.id; })[0];
      if (line) line.qty++; else lines.push({ id: p.id, qty: 1 });
      saveCart(lines);
      add.disabled = true;
      t.addedToCart(p.id, p.price, 1).then(function () {
        add.textContent = "Added ✓";
        add.setAttribute("data-added", "1");
        setTimeout(function () { add.textContent = "Add to cart"; add.disabled = false; }, 1500);
      });
    });
    info.appendChild(add);
    info.appendChild(el("p", "product-perks", "Free returns within 30 days · 2-year warranty"));
    main.appendChild(info);
    // One after another, so the similar items leave out those bought together.
    return widget(t, "#together", { title: "Frequently bought together", page: { type: "product", item: p.id } })
      .then(function () {
        return widget(t, "#similar", { title: "Similar products", page: { type: "product", item: p.id, widget: "similar" } });
      });
  };

  pages.cart = function (t) {
    t.pageView({ page: "cart" });
    var lines = cart().filter(function (l) { return products[l.id]; });
    var list = $("#cart-lines"), summary = $("#cart-summary");
    if (!lines.length) {
      list.appendChild(el("p", "empty", "Your cart is empty."));
      summary.hidden = true;
    }
    var total = 0;
    lines.forEach(function (l) {
      var p = products[l.id];
      total += p.price * l.qty;
      var row = el("div", "cart-line");
      row.setAttribute("data-item", p.id);
      var img = el("img", "cart-img");
      img.src = p.image;
      img.alt = p.name;
      row.appendChild(img);
      var name = el("a", "cart-name", p.name);
      name.href = productUrl(p.id);
      row.appendChild(name);
      row.appendChild(el("span", "cart-qty", "× " + l.qty));
      row.appendChild(el("span", "cart-price", money.format(p.price * l.qty)));
      var rm = el("button", "link", "Remove");
      rm.addEventListener("click", function () {
        saveCart(cart().filter(function (x) { return x.id !== p.id; }));
        t.removedFromCart(p.id).then(function () { location.reload(); });
      });
      row.appendChild(rm);
      list.appendChild(row);
    });
    $("#cart-total").textContent = money.format(total);
    /* The visitor's discount tier, applied to the subtotal as the shop's
       checkout would (tailor already capped it at the margin guard). */
    var discount = lines.length ? t.decide("discount").then(function (d) {
      var r = d.result, row = $("#cart-discount");
      row.setAttribute("data-tier", (r && r.tier) || "");
      if (!r || !r.percent) return;
      var off = Math.round(total * r.percent) / 100;
      row.querySelector("span").textContent = (r.reason || "Your discount") + " (" + tierText(r) + ")";
      row.querySelector("strong").textContent = "−" + money.format(off);
      row.hidden = false;
      $("#cart-total").textContent = money.format(total - off);
    }).catch(function (err) { console.warn("tailor:", err); }) : Promise.resolve();
    $("#place-order").addEventListener("click", function () {
      var orderId = "web-" + Date.now().toString(36);
      var items = lines.map(function (l) { return { id: l.id, price: products[l.id].price, quantity: l.qty }; });
      $("#place-order").disabled = true;
      t.orderCompleted(orderId, items, Math.round(total * 100) / 100).then(function () {
        saveCart([]); /* the badge goes with it */
        $("#cart-lines").textContent = "";
        $("#cart").hidden = true;
        var done = $("#thanks");
        done.hidden = false;
        done.querySelector("strong").textContent = orderId;
      });
    });
    return Promise.all([discount, widget(t, "#complements", {
      title: lines.length ? "Complete your order" : "Popular right now",
      page: { type: "cart" },
    })]);
  };

  /* Find your fit: the strategy's quiz, the preference centre, and the
     bestsellers they choose, drawn again after each answer or change (the
     browser test waits for #picks' data-round to move on). */
  pages.prefs = function (t) {
    t.pageView({ page: "prefs" });
    var round = 0;
    function picks() {
      return widget(t, "#picks", { title: "Popular for you", page: { type: "home", widget: "bestsellers" } })
        .then(function () { $("#picks").setAttribute("data-round", String(++round)); });
    }
    function centre() {
      return t.preferences($("#prefs"), { quiz: "fit", onChange: function () { quiz().then(picks); } });
    }
    function quiz() {
      return t.quiz($("#quiz"), { quiz: "fit", onAnswer: function () { centre().then(picks); } });
    }
    return Promise.all([quiz(), centre(), picks()]);
  };

  /* The mailbox: the emails tailor's triggers put in the outbox for this
     customer, the scheduled ones with the time they are due, read from the
     admin API's export of the customer (GET /v1/customers/{id}/export). */
  function when(ms) {
    var d = new Date(ms), mins = Math.round((ms - Date.now()) / 60000);
    var rel = mins > 0 ? (mins < 120 ? "in " + mins + " min" : "in " + Math.round(mins / 60) + " h")
                       : (mins > -120 ? -mins + " min ago" : Math.round(-mins / 60) + " h ago");
    return d.toLocaleString("en-GB") + " (" + rel + ")";
  }
  function itemNames(list) {
    return (list || []).map(function (i) { return (products[i.id] || i).name || i.id; }).join(", ");
  }
  pages.mailbox = function (t) {
    t.pageView({ page: "mailbox" });
    var list = $("#mail"), customer = personas[persona()].customer;
    if (!customer) {
      list.appendChild(el("p", "empty", "Emails go to customers who gave their address and consent. " +
                                        "Act as the VIP customer, put something in the cart, and come back."));
      list.setAttribute("data-state", "ready");
      return Promise.resolve();
    }
    return fetch("/v1/customers/" + encodeURIComponent(customer) + "/export", {
      headers: { "Authorization": "Bearer " + ADMIN_TOKEN },
    }).then(function (r) { return r.json(); }).then(function (data) {
      var rows = (data.outbox || []).slice().sort(function (a, b) { return b.created - a.created; });
      if (!rows.length) list.appendChild(el("p", "empty", "No email for " + customer + " yet."));
      rows.forEach(function (row) {
        var vars = typeof row.vars === "string" ? JSON.parse(row.vars || "{}") : (row.vars || {});
        var mail = el("article", "mail " + row.state);
        mail.setAttribute("data-template", row.template);
        mail.setAttribute("data-state", row.state);
        var head = el("div", "mail-head");
        head.appendChild(el("strong", "mail-template", row.template.replace(/_/g, " ")));
        head.appendChild(el("span", "mail-state", row.state));
        mail.appendChild(head);
        mail.appendChild(el("div", "mail-due", (row.state === "pending" ? "Due " : row.state === "cancelled" ? "Cancelled; was due " : "Due ") + when(row.due)));
        var shown = itemNames(vars.cart) || itemNames(vars.bought) || itemNames(vars.viewed);
        if (shown) mail.appendChild(el("div", "mail-items", "About: " + shown));
        if (vars.items && vars.items.length) mail.appendChild(el("div", "mail-items muted", "Picks: " + itemNames(vars.items)));
        list.appendChild(mail);
      });
      list.setAttribute("data-state", "ready");
    });
  };

  /* Load the catalog, start tailor, draw the page.  The body's data-page
     names it; data-ready="1" marks the end (the browser test waits for it). */
  fetch("catalog.json").then(function (r) { return r.json(); }).then(function (data) {
    productList = data.products;
    productList.forEach(function (p) { products[p.id] = p; });
    personas = data.personas;
    var t = window.Tailor.init({
      endpoint: "",
      token: TOKEN,
      context: personas[persona()].context,
      product: function (id) { return products[id]; },
    });
    window.shopTailor = t;
    renderHeader(t);
    // A minute on a page asks the time_on_page popup (the shipped
    // strategy's email capture).  An automated browser (the browser test)
    // asks it itself, so that no timer covers a step it is taking.
    t.watchPopups({ timeOnPage: navigator.webdriver ? 0 : 60 });
    var page = document.body.getAttribute("data-page");
    return Promise.all([renderInsight(t), pages[page](t)]);
  }).then(function () {
    document.body.setAttribute("data-ready", "1");
  }).catch(function (err) {
    console.error(err);
    document.body.setAttribute("data-ready", "error");
  });
})();
