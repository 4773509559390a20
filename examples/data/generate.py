#!/usr/bin/env python3
"""generate.py: the demo shop's sample data, made up and deterministic.

Writes three things:
  --events FILE   NDJSON for `tailor ingest`: the catalog (item_upsert),
                  customer profiles (customer_upsert) and a history of
                  sessions: views, carts and orders with real structure
                  (winter jackets bought with hats and gloves, runners
                  buying running shoes with socks and shirts, campers
                  buying tents with sleeping bags and headlamps)
  --site DIR      catalog.json (the shop's own product data: names,
                  prices, images) and img/*.svg, one drawn image a product

The history ends at --now (default: today, 00:00 UTC) and reaches back a
year, so a store loaded today looks like a shop that is open today.  The
same seed and --now give the same bytes.  Standard library only.

Three visitors are prepared for the demo's switch (PERSONAS): a returning
visitor who looked at winter jackets on two earlier visits and bought
nothing, and a VIP customer, a runner with many orders.
"""

import argparse
import datetime as dt
import json
import math
import os
import random

SEED = 8
DAY_MS = 86400 * 1000
HISTORY_DAYS = 120      # sessions of ordinary visitors and customers
VIP_HISTORY_DAYS = 360  # the VIP has been buying for a year
CUSTOMERS = 420
ANON_SESSIONS = 900
OUT_OF_STOCK = 0.04     # share of products out of stock

VIP_ORDERS = 17
PERSONAS = {
    "new": {"label": "New visitor", "note": "First time here: no history at all.",
            "context": {"country": "DE"}},
    "returning": {"label": "Returning visitor", "anon": "demo-returning",
                  "note": "Looked at winter jackets and a beanie on two earlier visits, "
                          "bought nothing.",
                  "context": {"country": "DE"}},
    "vip": {"label": "VIP customer", "customer": "demo-vip",
            "note": "A runner in Germany with %d orders in a year." % VIP_ORDERS,
            "context": {"country": "DE"}},
}

# The demo's server.customer_secret (examples/storefront/tailor.json).  A real
# shop's backend signs a token for the customer who logged in; the demo has
# no backend, so its customer personas carry a token signed here, valid for a
# year (docs/server.md, "Customer tokens").
DEMO_CUSTOMER_SECRET = "demo-customer-secret-not-for-production"


def customer_token(customer, ttl_s=365 * 86400):
    import hashlib
    import hmac
    import time

    msg = "%s.%d" % (customer, int(time.time()) + ttl_s)
    return msg + "." + hmac.new(DEMO_CUSTOMER_SECRET.encode(), msg.encode(),
                                hashlib.sha256).hexdigest()


def personas_with_tokens():
    out = {}
    for name, p in PERSONAS.items():
        out[name] = dict(p)
        if p.get("customer"):
            out[name]["customer_token"] = customer_token(p["customer"])
    return out


COUNTRIES = [("DE", 0.34), ("GB", 0.18), ("FR", 0.16), ("NL", 0.12), ("AT", 0.08), ("US", 0.12)]

# Product types: key, category, shape of the drawn image, price range,
# brands, gendered (a men's and a women's version), how many, the noun.
TYPES = [
    ("winter_jacket", "Clothing/Jackets/Winter Jackets", "jacket", (149, 329),
     ["Nordkap", "Fjello", "Alpenglow"], True, 24, "Down Jacket"),
    ("rain_jacket", "Clothing/Jackets/Rain Jackets", "jacket", (89, 219),
     ["Fjello", "Harbour", "Alpenglow"], True, 14, "Rain Shell"),
    ("hat", "Accessories/Hats", "beanie", (19, 39),
     ["Nordkap", "Fjello", "Alpenglow"], False, 16, "Wool Beanie"),
    ("gloves", "Accessories/Gloves", "gloves", (24, 59),
     ["Nordkap", "Fjello", "Alpenglow"], False, 14, "Gloves"),
    ("scarf", "Accessories/Scarves", "scarf", (25, 49),
     ["Nordkap", "Alpenglow"], False, 10, "Scarf"),
    ("running_shoe", "Shoes/Running Shoes", "shoe", (99, 179),
     ["Velo", "Stridewell"], True, 24, "Running Shoe"),
    ("hiking_boot", "Shoes/Hiking Boots", "boot", (129, 229),
     ["Fjello", "Alpenglow"], True, 14, "Hiking Boot"),
    ("sneaker", "Shoes/Sneakers", "shoe", (69, 119),
     ["Harbour", "Stridewell"], True, 12, "Sneaker"),
    ("run_shirt", "Sport/Running/Shirts", "shirt", (29, 59),
     ["Velo", "Stridewell"], True, 16, "Running Tee"),
    ("run_shorts", "Sport/Running/Shorts", "shorts", (29, 49),
     ["Velo", "Stridewell"], True, 12, "Running Shorts"),
    ("run_socks", "Sport/Running/Socks", "socks", (12, 19),
     ["Velo", "Stridewell"], False, 10, "Running Socks"),
    ("bottle", "Sport/Running/Bottles", "bottle", (14, 29),
     ["Velo", "Campfire"], False, 8, "Bottle"),
    ("hike_socks", "Outdoor/Hiking/Socks", "socks", (15, 24),
     ["Fjello", "Alpenglow"], False, 8, "Hiking Socks"),
    ("backpack", "Outdoor/Backpacks", "backpack", (59, 189),
     ["Fjello", "Campfire", "Alpenglow"], False, 14, "Backpack"),
    ("tent", "Outdoor/Camping/Tents", "tent", (149, 449),
     ["Campfire", "Fjello"], False, 12, "Tent"),
    ("sleeping_bag", "Outdoor/Camping/Sleeping Bags", "sleeping_bag", (79, 249),
     ["Campfire", "Fjello"], False, 10, "Sleeping Bag"),
    ("headlamp", "Outdoor/Camping/Headlamps", "headlamp", (25, 69),
     ["Campfire", "Alpenglow"], False, 8, "Headlamp"),
    ("yoga_mat", "Sport/Yoga/Mats", "mat", (29, 89),
     ["Om Studio"], False, 10, "Yoga Mat"),
    ("yoga_pants", "Sport/Yoga/Leggings", "pants", (49, 89),
     ["Om Studio", "Stridewell"], True, 12, "Yoga Leggings"),
    ("tee", "Clothing/T-Shirts", "shirt", (19, 39),
     ["Harbour", "Stridewell"], True, 16, "Organic Tee"),
]

MODELS = ["Aurora", "Fjord", "Tundra", "Glacier", "Summit", "Ridge", "Polar", "Boreal",
          "Pacer", "Tempo", "Stride", "Sprint", "Cadence", "Drift", "Vista", "Cascade",
          "Timber", "Ember", "Harbor", "Coast", "Canyon", "Meadow", "Solstice", "Halo",
          "Nimbus", "Zephyr", "Granite", "Birch", "Alder", "Lumen", "Orbit", "Comet"]

COLORS = [("Black", "#2b2d33"), ("Navy", "#27406b"), ("Forest", "#2f5d46"),
          ("Red", "#b83a3a"), ("Ochre", "#c98b2b"), ("Sky", "#4b8bc2"),
          ("Stone", "#8c8577"), ("Plum", "#6e3f6b"), ("Teal", "#2b7c7a"),
          ("Coral", "#e0705a"), ("Olive", "#6b7039"), ("Slate", "#5a6675")]

# What is bought together: a main product, then each complement with a
# probability.  Missions weigh differently by country (PREFERENCES).
MISSIONS = {
    "winter": ("winter_jacket", [("hat", 0.8), ("gloves", 0.7), ("scarf", 0.35)]),
    "running": ("running_shoe", [("run_socks", 0.8), ("run_shirt", 0.5), ("run_shorts", 0.4),
                                 ("bottle", 0.25)]),
    "hiking": ("hiking_boot", [("hike_socks", 0.8), ("backpack", 0.4), ("rain_jacket", 0.3)]),
    "camping": ("tent", [("sleeping_bag", 0.7), ("headlamp", 0.6), ("backpack", 0.2)]),
    "yoga": ("yoga_mat", [("yoga_pants", 0.6)]),
    "casual": ("sneaker", [("tee", 0.6)]),
    "rain": ("rain_jacket", [("backpack", 0.3), ("hat", 0.2)]),
}
PREFERENCES = {
    "DE": {"winter": 4, "running": 3, "hiking": 3, "camping": 1, "yoga": 1, "casual": 1, "rain": 1},
    "AT": {"winter": 4, "running": 1, "hiking": 4, "camping": 1, "yoga": 1, "casual": 1, "rain": 1},
    "GB": {"winter": 1, "running": 4, "hiking": 1, "camping": 1, "yoga": 1, "casual": 2, "rain": 4},
    "FR": {"winter": 1, "running": 3, "hiking": 1, "camping": 1, "yoga": 4, "casual": 2, "rain": 1},
    "NL": {"winter": 1, "running": 2, "hiking": 1, "camping": 2, "yoga": 1, "casual": 3, "rain": 4},
    "US": {"winter": 1, "running": 2, "hiking": 2, "camping": 5, "yoga": 2, "casual": 2, "rain": 1},
}
# Women do more yoga in this shop, men more camping: enough for
# "bestsellers among women in Germany" to differ from everyone's.
GENDER_TILT = {"female": {"yoga": 3, "running": 1.3}, "male": {"camping": 2, "hiking": 1.3}}


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pick_weighted(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for value, w in pairs:
        x -= w
        if x < 0:
            return value
    return pairs[-1][0]


class Catalog:
    """The products, by type, each type ranked by popularity (Zipf-like)."""

    def __init__(self, rng):
        self.products = []
        self.by_type = {}
        used = set()
        for key, category, shape, (lo, hi), brands, gendered, count, noun in TYPES:
            items = []
            for i in range(count):
                gender = ("women" if i % 2 else "men") if gendered else "unisex"
                brand = brands[i % len(brands)]
                while True:
                    model = rng.choice(MODELS)
                    name = "%s %s" % (model, noun)
                    if gendered:
                        name = ("Women's " if gender == "women" else "Men's ") + name
                    if name not in used:
                        break
                used.add(name)
                color_name, color = COLORS[(i * 5 + len(key)) % len(COLORS)]
                price = round(rng.uniform(lo, hi)) - 0.05
                pid = (brand + " " + name).lower().replace("'", "").replace(" ", "-")
                product = {
                    "id": pid, "name": name, "brand": brand, "category": category,
                    "price": price, "cost": round(price * rng.uniform(0.35, 0.55), 2),
                    "in_stock": rng.random() > OUT_OF_STOCK, "color": color_name,
                    "gender": gender, "type": key, "shape": shape, "hex": color,
                    "image": "img/%s.svg" % pid,
                }
                items.append(product)
                self.products.append(product)
            self.by_type[key] = items
        # The pairs shoppers favour: each main product has its own matching
        # complement of each type (same brand when there is one), so "bought
        # together" is about items, not only categories.
        self.match = {}
        for _, (main, comps) in MISSIONS.items():
            for i, p in enumerate(self.by_type[main]):
                for ctype, _ in comps:
                    pool = self.by_type[ctype]
                    same = [c for c in pool if c["brand"] == p["brand"]] or pool
                    self.match[(p["id"], ctype)] = same[i % len(same)]

    def popular(self, rng, key, gender=None):
        """A product of type `key`; `gender` (female, male) tilts towards
        the products made for them."""
        wear = {"female": "women", "male": "men"}.get(gender)
        items = self.by_type[key]
        weights = []
        for rank, p in enumerate(items):
            w = 1.0 / (rank + 1) ** 0.9
            if wear and p["gender"] not in ("unisex", wear):
                w *= 0.08
            weights.append((p, w))
        return pick_weighted(rng, weights)


class History:
    def __init__(self, rng, catalog, now_ms):
        self.rng, self.cat, self.now = rng, catalog, now_ms
        self.events = []
        self.orders = 0

    def emit(self, ev):
        self.events.append(ev)

    def session(self, who, start_ms, mission, gender, country, buy, sid, device="desktop"):
        """One visit: browse the mission's main type, maybe buy with
        complements.  Returns the time the session ended."""
        rng, cat = self.rng, self.cat
        main_type, comps = MISSIONS[mission]
        t = start_ms
        props = {"country": country, "device": device}

        def ev(kind, **fields):
            nonlocal t
            t += rng.randint(15, 90) * 1000
            e = {"type": kind}
            e.update(who)
            e["session"] = sid
            e.update(fields)
            e["ts"] = iso(t)
            e["props"] = props
            self.emit(e)

        looked = []
        for _ in range(rng.randint(2, 5)):
            p = cat.popular(rng, main_type, gender)
            if p not in looked:
                looked.append(p)
            ev("view", item=p["id"])
        main = looked[-1]
        if not buy:
            if rng.random() < 0.25 and main["in_stock"]:
                ev("add_to_cart", item=main["id"], price=main["price"])
            return t
        basket = [main]
        for ctype, prob in comps:
            if rng.random() < prob:
                comp = cat.match[(main["id"], ctype)] if rng.random() < 0.7 \
                    else cat.popular(rng, ctype, gender)
                ev("view", item=comp["id"])
                basket.append(comp)
        basket = [p for p in basket if p["in_stock"]]
        if not basket:
            return t
        for p in basket:
            ev("add_to_cart", item=p["id"], price=p["price"])
        self.orders += 1
        ev("purchase", order_id="o%05d" % self.orders,
           items=[{"id": p["id"], "price": p["price"], "quantity": 1} for p in basket])
        return t


def days_ago(rng, span, skew=1.6):
    """A day in the last `span` days, recent ones more likely."""
    return span * rng.random() ** skew


def mission_for(rng, country, gender):
    prefs = dict(PREFERENCES[country])
    for m, f in GENDER_TILT.get(gender, {}).items():
        prefs[m] *= f
    return pick_weighted(rng, sorted(prefs.items()))


def generate(seed, now_ms):
    rng = random.Random(seed)
    cat = Catalog(rng)
    h = History(rng, cat, now_ms)
    start = now_ms - (VIP_HISTORY_DAYS + 1) * DAY_MS
    for p in cat.products:
        item = {k: p[k] for k in ("id", "name", "brand", "category", "price", "cost",
                                   "in_stock", "image")}
        item["tags"] = [p["gender"], p["color"].lower(), p["type"].replace("_", "-")]
        h.emit({"type": "item_upsert", "item": item, "ts": iso(start)})

    # Customers: a country, a gender, a favourite mission, 1 to 5 orders.
    for c in range(CUSTOMERS):
        cid = "c%04d" % (c + 1)
        country = pick_weighted(rng, COUNTRIES)
        gender = rng.choice(["female", "male"])
        h.emit({"type": "customer_upsert", "ts": iso(start),
                "customer": {"id": cid, "email": "%s@example.com" % cid,
                             "consent": {"email": rng.random() < 0.6},
                             "attrs": {"country": country, "gender": gender}}})
        favourite = mission_for(rng, country, gender)
        orders = min(5, 1 + int(rng.expovariate(1.1)))
        visits = sorted(days_ago(rng, HISTORY_DAYS) for _ in range(orders + rng.randint(0, 3)))
        for n, d in enumerate(reversed(visits)):
            mission = favourite if rng.random() < 0.65 else mission_for(rng, country, gender)
            t0 = now_ms - int(d * DAY_MS)
            h.session({"customer": cid}, t0, mission, gender, country, n < orders,
                       "s-%s-%d" % (cid, n))

    # Anonymous visitors: browsing, a few carts left behind, a few orders.
    for s in range(ANON_SESSIONS):
        country = pick_weighted(rng, COUNTRIES)
        gender = rng.choice(["female", "male"])
        t0 = now_ms - int(days_ago(rng, HISTORY_DAYS, 1.3) * DAY_MS)
        h.session({"anon": "a%05d" % (s + 1)}, t0, mission_for(rng, country, gender), gender,
                  country, rng.random() < 0.08, "s-a%05d" % (s + 1),
                  "mobile" if rng.random() < 0.45 else "desktop")

    # The returning visitor: winter jackets and a hat on two earlier visits
    # (9 and 2 days ago), nothing bought.
    who = {"anon": PERSONAS["returning"]["anon"]}
    jackets = cat.by_type["winter_jacket"]
    for n, (d, items) in enumerate([(9, [jackets[1], jackets[3]]),
                                    (2, [jackets[5], jackets[1], cat.by_type["hat"][2]])]):
        t = now_ms - d * DAY_MS + 11 * 3600 * 1000
        for p in items:
            t += 40 * 1000
            h.emit(dict(who, type="view", item=p["id"], session="s-demo-returning-%d" % n,
                        ts=iso(t), props={"country": "DE", "device": "desktop"}))

    # The VIP: a woman runner in Germany, an order about every three weeks
    # for a year, running first and then hiking and the odd winter jacket.
    vip = PERSONAS["vip"]["customer"]
    h.emit({"type": "customer_upsert", "ts": iso(start),
            "customer": {"id": vip, "email": "vip@example.com", "consent": {"email": True},
                         "attrs": {"country": "DE", "gender": "female"}}})
    for n in range(VIP_ORDERS):
        d = VIP_HISTORY_DAYS - 5 - n * 21 - rng.randint(0, 4)
        mission = ["running", "running", "hiking", "running", "winter", "yoga"][n % 6]
        h.session({"customer": vip}, now_ms - d * DAY_MS, mission, "female", "DE", True,
                  "s-demo-vip-%d" % n)

    h.events.sort(key=lambda e: (e["ts"], e["type"] != "item_upsert"))
    return cat, h.events


SHAPES = {
    # 200x200 drawings: the product's colour is {c}, a darker tone {d}.
    "jacket": '<path d="M70 40 L100 52 L130 40 L165 62 L180 120 L158 126 L150 96 L150 170 '
              'L50 170 L50 96 L42 126 L20 120 L35 62 Z" fill="{c}"/>'
              '<path d="M100 52 L100 170" stroke="{d}" stroke-width="4"/>'
              '<path d="M70 40 L100 52 L130 40 L122 30 L78 30 Z" fill="{d}"/>'
              '<path d="M50 120 L150 120" stroke="{d}" stroke-width="3" opacity=".5"/>',
    "beanie": '<path d="M45 130 Q45 55 100 55 Q155 55 155 130 Z" fill="{c}"/>'
              '<rect x="38" y="122" width="124" height="30" rx="8" fill="{d}"/>'
              '<circle cx="100" cy="48" r="16" fill="{d}"/>',
    "gloves": '<path d="M55 165 L55 95 Q55 70 70 70 L70 55 Q78 45 86 55 L86 50 Q94 40 102 50 '
              'L102 60 Q110 52 116 62 L116 110 L128 92 Q140 84 142 98 L118 150 L115 165 Z" '
              'fill="{c}"/><rect x="52" y="150" width="66" height="22" rx="4" fill="{d}"/>',
    "scarf": '<rect x="106" y="80" width="30" height="72" rx="4" fill="{d}"/>'
             '<path d="M109 152 v12 M116 152 v12 M123 152 v12 M130 152 v12" stroke="{d}" '
             'stroke-width="3"/><path d="M50 50 Q100 82 150 50 L150 78 Q100 112 50 78 Z" '
             'fill="{c}"/><rect x="68" y="84" width="32" height="86" rx="4" fill="{c}"/>'
             '<path d="M72 170 v13 M79 170 v13 M86 170 v13 M93 170 v13" stroke="{c}" '
             'stroke-width="3"/><path d="M68 112 h32 M68 146 h32" stroke="{d}" stroke-width="6"/>',
    "shoe": '<path d="M25 140 L30 95 Q60 100 80 80 L105 90 Q120 120 170 125 Q185 130 180 150 '
            'L30 150 Z" fill="{c}"/><path d="M25 150 L180 150 L178 162 L28 162 Z" fill="#f1f1ef"/>'
            '<path d="M85 95 L95 108 M95 90 L105 103" stroke="#fff" stroke-width="4"/>',
    "boot": '<path d="M55 40 L110 40 L112 110 Q150 112 165 135 L165 150 L45 150 L50 90 Z" '
            'fill="{c}"/><path d="M42 150 L168 150 L168 166 L42 166 Z" fill="{d}"/>'
            '<path d="M70 55 L100 55 M70 72 L100 72 M70 89 L102 89" stroke="#e9d9b6" '
            'stroke-width="4"/>',
    "shirt": '<path d="M70 40 Q100 58 130 40 L170 62 L155 92 L140 84 L140 170 L60 170 L60 84 '
             'L45 92 L30 62 Z" fill="{c}"/><path d="M80 42 Q100 62 120 42" stroke="{d}" '
             'stroke-width="5" fill="none"/>',
    "shorts": '<path d="M45 55 L155 55 L165 150 L112 150 L100 95 L88 150 L35 150 Z" fill="{c}"/>'
              '<rect x="45" y="50" width="110" height="14" fill="{d}"/>',
    "socks": '<path d="M70 30 L105 30 L105 120 Q105 150 80 160 L50 165 Q30 165 32 148 '
             'Q34 135 55 130 L70 122 Z" fill="{c}"/><rect x="70" y="30" width="35" height="16" '
             'fill="{d}"/><path d="M115 40 L145 40 L145 125 Q145 152 122 158 L100 160" '
             'fill="none" stroke="{d}" stroke-width="6" opacity=".6"/>',
    "bottle": '<rect x="75" y="55" width="50" height="115" rx="16" fill="{c}"/>'
              '<rect x="85" y="30" width="30" height="28" rx="5" fill="{d}"/>'
              '<rect x="75" y="95" width="50" height="30" fill="#fff" opacity=".35"/>',
    "backpack": '<rect x="55" y="50" width="90" height="120" rx="28" fill="{c}"/>'
                '<path d="M80 50 Q80 28 100 28 Q120 28 120 50" fill="none" stroke="{d}" '
                'stroke-width="8"/><rect x="70" y="110" width="60" height="45" rx="10" '
                'fill="{d}"/>',
    "tent": '<path d="M20 160 L100 45 L180 160 Z" fill="{c}"/>'
            '<path d="M100 45 L78 160 L122 160 Z" fill="{d}"/>'
            '<path d="M10 162 L190 162" stroke="#8c8577" stroke-width="5"/>',
    "sleeping_bag": '<rect x="40" y="40" width="120" height="130" rx="50" fill="{c}"/>'
                    '<path d="M45 75 L155 75 M42 110 L158 110 M45 145 L155 145" '
                    'stroke="{d}" stroke-width="4"/><ellipse cx="100" cy="58" rx="34" '
                    'ry="12" fill="{d}"/>',
    "headlamp": '<ellipse cx="100" cy="105" rx="70" ry="38" fill="none" stroke="{d}" '
                'stroke-width="12"/><rect x="72" y="118" width="56" height="40" rx="10" '
                'fill="{c}"/><circle cx="100" cy="138" r="13" fill="#fff3b0"/>',
    "mat": '<rect x="30" y="70" width="140" height="60" rx="6" fill="{c}"/>'
           '<ellipse cx="165" cy="100" rx="18" ry="30" fill="{d}"/>',
    "pants": '<path d="M62 35 L138 35 L150 170 L112 170 L100 80 L88 170 L50 170 Z" fill="{c}"/>'
             '<rect x="62" y="30" width="76" height="14" fill="{d}"/>',
}


def darker(hexcolor, f=0.72):
    r, g, b = (int(hexcolor[i:i + 2], 16) for i in (1, 3, 5))
    return "#%02x%02x%02x" % (int(r * f), int(g * f), int(b * f))


def svg(product):
    c = product["hex"]
    drawing = SHAPES[product["shape"]].replace("{c}", c).replace("{d}", darker(c))
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 200">'
            '<rect width="200" height="200" fill="#f4f1ec"/>%s</svg>\n' % drawing)


def write_site(site, cat):
    os.makedirs(os.path.join(site, "img"), exist_ok=True)
    products = []
    for p in cat.products:
        with open(os.path.join(site, "img", p["id"] + ".svg"), "w") as f:
            f.write(svg(p))
        products.append({k: p[k] for k in ("id", "name", "brand", "category", "price",
                                           "in_stock", "color", "gender", "image")})
    with open(os.path.join(site, "catalog.json"), "w") as f:
        json.dump({"products": products, "personas": personas_with_tokens()}, f, indent=0,
                  separators=(",", ":"))
        f.write("\n")


def parse_now(text):
    if text:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.timezone.utc)
    else:
        d = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(d.timestamp() * 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", required=True, help="NDJSON file to write")
    ap.add_argument("--site", help="folder for catalog.json and img/")
    ap.add_argument("--now", help="end of the history, ISO 8601 (default: today 00:00 UTC)")
    ap.add_argument("--seed", type=int, default=SEED)
    a = ap.parse_args()
    cat, events = generate(a.seed, parse_now(a.now))
    with open(a.events, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    if a.site:
        write_site(a.site, cat)
    print("%s: %d events, %d products" % (a.events, len(events), len(cat.products)))


if __name__ == "__main__":
    main()
