"""A generated shop with planted structure, for the offline evaluation (bench/recs_offline.py),
the tests and the demo: deterministic for a seed.

- Categories are paths "Dept > Kind" (DEPARTMENTS x KINDS); each product has one, a brand, a
  log-normal price around its kind's price level, a margin label (custom_label_0) and, for one
  product in ten, a sibling variant (same item_group_id).
- Planted co-purchases: products are dealt into bundles of 3 or 4 complementary products from
  different categories (a mug, coffee beans, a spoon). An order picks a bundle (Zipf-popular),
  then 2 or more of its products, and with probability `noise` one product drawn by global
  popularity: the structure bought_together should find, under noise a popularity list cannot
  explain.
- Sessions view products of one category (what `similar` and viewed_together look like) and
  now and then a bundle mate.
- Orders are spread over `days` days, oldest first; customers order 1 to 5 times."""
import math
import random

DEPARTMENTS = ("Home", "Garden", "Sports", "Office", "Kids", "Kitchen")
KINDS = ("Basics", "Tools", "Decor", "Care")
BRANDS = ("Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord", "Gale")


def planted_orders(ids, bundles, orders, rng, noise=0.3, days=60, now=1_790_000_000.0, prices=None):
    """Order records over `days` days before `now`, oldest first: each picks a bundle (Zipf-popular),
    2 or more of its products, and with probability `noise` one product by global popularity.
    Customers order about twice each; `prices` ({id: price}) default to 10."""
    bundle_weight = [1 / (rank + 1) ** 0.8 for rank in range(len(bundles))]
    item_weight = [1 / (rank + 1) ** 0.9 for rank in range(len(ids))]
    popular = ids[:]
    rng.shuffle(popular)
    customers = [f"customer-{c:05d}" for c in range(max(1, orders // 2))]
    records = []
    for n in range(orders):
        bundle = rng.choices(bundles, bundle_weight)[0]
        items = rng.sample(bundle, rng.randint(2, len(bundle)))
        if rng.random() < noise:
            extra = rng.choices(popular, item_weight)[0]
            if extra not in items:
                items.append(extra)
        ts = now - days * 86_400 * (1 - n / orders)
        records.append({"order_id": f"order-{n:06d}", "ts": int(ts * 1000), "customer_id": rng.choice(customers),
                        "items": [{"id": item, "quantity": 1, "price": (prices or {}).get(item, 10.0)}
                                  for item in items]})
    return records


def generate(products=400, orders=6000, sessions=4000, seed=7, noise=0.3, days=60, now=1_790_000_000.0):
    """{"products": [feed records], "orders": [order records], "sessions": [(visitor, [ids])],
    "bundles": [[ids]]}: orders sorted by time."""
    rng = random.Random(seed)
    categories = [f"{d} > {k}" for d in DEPARTMENTS for k in KINDS]
    level = {c: math.exp(rng.uniform(math.log(5), math.log(200))) for c in categories}
    feed = []
    for i in range(products):
        cat = categories[i % len(categories)]
        price = round(level[cat] * math.exp(rng.gauss(0, 0.3)), 2)
        product = {"id": f"sku-{i:05d}", "title": f"{cat.split(' > ')[1]} item {i}",
                   "link": f"https://shop.example/p/{i}", "image_link": f"https://shop.example/img/{i}.svg",
                   "price": f"{price:.2f} EUR", "availability": "out_of_stock" if rng.random() < 0.05 else "in_stock",
                   "brand": rng.choice(BRANDS), "product_type": cat,
                   "custom_label_0": "high_margin" if rng.random() < 0.3 else "standard"}
        if i % 10 == 1:
            product["item_group_id"] = f"group-{i - 1}"
            feed[-1]["item_group_id"] = f"group-{i - 1}"
        feed.append(product)
    ids = [p["id"] for p in feed]
    by_category = {c: [p["id"] for p in feed if p["product_type"] == c] for c in categories}
    shuffled = ids[:]
    rng.shuffle(shuffled)
    bundles, i = [], 0
    while i + 3 <= len(shuffled):
        size = 3 if rng.random() < 0.5 else 4
        bundles.append(shuffled[i:i + size])
        i += size
    bundle_of = {item: b for b in bundles for item in b}
    order_records = planted_orders(ids, bundles, orders, rng, noise, days, now)
    session_records = []
    for s in range(sessions):
        cat = rng.choice(categories)
        viewed = rng.sample(by_category[cat], min(len(by_category[cat]), rng.randint(2, 5)))
        if rng.random() < 0.3 and viewed[0] in bundle_of:
            viewed.append(rng.choice(bundle_of[viewed[0]]))
        session_records.append((f"visitor-{s:06d}", list(dict.fromkeys(viewed))))
    return {"products": feed, "orders": order_records, "sessions": session_records, "bundles": bundles}
