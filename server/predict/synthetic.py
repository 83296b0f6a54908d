"""A generated site whose conversions depend on known attributes: what bench/predict_auc, the
tests and the e2e test train on. Each session is one exposed page view whose attribute tree is
drawn at random; it converts with the probability TRUE_MODEL gives that tree, so the best any
model can do (the true AUC) is known."""
import math
import random

from server.predict.features import features

# The generator's own logistic model, on attributes (not on the encoding, which must find it).
TRUE_INTERCEPT = -3.6


def true_logit(tree):
    visit, cart = tree["visit"], tree.get("cart", {})
    added = tree["history"]["events"].get("add_to_cart", 0)
    return (TRUE_INTERCEPT + 0.9 * math.log1p(visit["pageviews"]) + 1.2 * (cart.get("value", 0) > 0)
            + 0.8 * (tree["referrer"]["medium"] == "email") + 0.5 * (visit["count"] > 1)
            - 0.6 * (tree["device"]["type"] == "mobile") + 0.7 * math.log1p(added))


def true_probability(tree):
    return 1 / (1 + math.exp(-true_logit(tree)))


def visitor_tree(rng, high_intent=None):
    """A random attribute tree; high_intent True (a returning visitor from an email, on a desktop,
    deep in the session with a cart) or False (a first page view from social, on a phone) draws
    from the ends of the distribution."""
    count = 1 if high_intent is False else 1 + min(int(rng.expovariate(0.8)), 30)
    pageviews = 1 if high_intent is False else 1 + min(int(rng.expovariate(0.25)), 60)
    if high_intent:
        pageviews = max(pageviews, 12)
    carted = high_intent if high_intent is not None else rng.random() < 0.2
    medium = ("email" if high_intent else "social" if high_intent is False
              else rng.choice(("direct", "search", "social", "email", "paid", "referral")))
    tree = {
        "visit": {"count": count, "new": count == 1, "returning": count > 1, "pageviews": pageviews,
                  "total_pageviews": pageviews + (count - 1) * 4,
                  **({"days_since_last": rng.randint(0, 40)} if count > 1 else {})},
        "referrer": {"medium": medium},
        "utm": {"source": "newsletter"} if medium == "email" and rng.random() < 0.7 else {},
        "device": {"type": "desktop" if high_intent else "mobile" if high_intent is False
                   else rng.choice(("mobile", "mobile", "desktop", "tablet"))},
        "time": {"hour": rng.randint(0, 23)},
        "history": {"products": [f"sku-{i}" for i in range(min(pageviews, 20))],
                    "categories": [f"cat-{i % 5}" for i in range(min(pageviews, 20))],
                    "events": {"add_to_cart": rng.randint(1, 4)} if carted else {}},
        "cart": {"value": round(rng.uniform(10, 200), 2), "items": rng.randint(1, 4)} if carted else {},
    }
    return tree


def generate(sessions, seed=0, start_ts=1_764_000_000_000, goal="purchase"):
    """(feature rows as Store.feature_rows gives them, {visitor: true probability})."""
    rng = random.Random(seed)
    rows, truth = [], {}
    for i in range(sessions):
        tree = visitor_tree(rng)
        visitor = f"v1.{i:024x}"
        ts = start_ts + i * 1000
        values = features(tree)
        probability = true_probability(tree)
        truth[visitor] = probability
        rows.append({"id": f"e{i:019d}", "visitor": visitor, "ts": ts, "kind": "exposure", "goal": None,
                     "features": values})
        if rng.random() < probability:
            rows.append({"id": f"c{i:019d}", "visitor": visitor, "ts": ts + 500, "kind": "conversion", "goal": goal,
                         "features": values})
    return rows, truth
