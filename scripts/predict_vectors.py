"""Writes spec/08-predict.json from the Python twin (server/predict): hand-picked attribute trees
that probe each transform's edges, and generated visitors scored by a model trained on the
generated site. sdk_js/test/spec.test.js and tests/test_spec_vectors.py check both twins against
it. Run `.venv/bin/python scripts/predict_vectors.py` after changing the encoding on purpose."""
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.decisions.conditions import eval_condition  # noqa: E402
from server.predict.features import features  # noqa: E402
from server.predict.scorer import NO_MODEL, install_predictions  # noqa: E402
from server.predict.synthetic import generate, visitor_tree  # noqa: E402
from server.predict.training import train  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "spec" / "08-predict.json"
MARGIN = 1e-3  # no score closer than this to a threshold a condition compares it with

EDGES = [
    ("an empty tree has no features", {}),
    ("a first visit on a phone from search, at 23:00",
     {"visit": {"count": 1, "new": True, "pageviews": 1, "total_pageviews": 1}, "referrer": {"medium": "search"},
      "device": {"type": "mobile"}, "time": {"hour": 23}}),
    ("caps: counts past their bound read as the bound",
     {"visit": {"count": 5000, "pageviews": 1e6, "total_pageviews": 1e12, "days_since_last": 9999},
      "cart": {"value": 1e300, "items": 123456}}),
    ("negative and non-finite-looking numbers read as 0",
     {"visit": {"count": -3, "pageviews": "12", "days_since_last": None}, "cart": {"value": -40, "items": True}}),
    ("booleans are not numbers, visit.new must be true itself",
     {"visit": {"count": True, "new": 1}, "time": {"hour": False}}),
    ("hours at each band's edges",
     {"time": {"hour": 6}}),
    ("an hour of 5.999 is still night", {"time": {"hour": 5.999}}),
    ("an hour past 23 has no band", {"time": {"hour": 24}}),
    ("an unknown medium and a bot device set nothing",
     {"referrer": {"medium": "newsletter-ish"}, "device": {"type": "bot"}}),
    ("utm counts for a non-empty source, medium or campaign, not for term",
     {"utm": {"term": "mug", "content": "x"}}),
    ("utm with an empty source but a campaign", {"utm": {"source": "", "campaign": "spring"}}),
    ("categories count distinct strings only",
     {"history": {"products": ["a", "b", "a", 3], "categories": ["mugs", "mugs", "kitchen", 7, None]}}),
    ("event counts: the total, and the first 8 valid names in code-unit order",
     {"history": {"events": {"zeta": 1, "Add_to_cart": 3, "add_to_cart": 2, "bad name": 50, "_x": 4, "a": 1,
                             "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "neg": -5, "big": 1e9}}}),
    ("crm numbers keep their sign, booleans read 1 or 0, strings are left out",
     {"crm": {"ltv": 1234.5, "balance": -250, "vip": True, "churned": False, "tier": "gold",
              "orders": 0, "days_since_last_order": 12}}),
    ("crm: only the first 8 usable names count, a false one among them",
     {"crm": {f"n{i}": (False if i == 2 else i + 1) for i in range(12)} | {"a-text": "x"}}),
    ("arrays where objects are expected read as missing",
     {"visit": [1, 2], "history": {"events": [1, 2], "products": {"0": "a"}}, "crm": ["x"]}),
    ("prototype names are plain names",
     {"history": {"events": {"constructor": 2, "__proto__": 3, "toString": 1}}}),
]


def _scored_cases(rng, models, goal):
    cases = []
    for i in range(40):
        tree = visitor_tree(rng, high_intent=(None, True, False)[i % 3])
        install_predictions(tree, models, [goal])
        probability = tree["predict"][goal]
        thresholds = [t for t in (0.05, 0.1, 0.2, 0.5) if abs(probability - t) > MARGIN]
        conditions = [{"condition": {f"predict.{goal}": {"$lt": t}}, "matches": probability < t} for t in thresholds[:2]]
        conditions.append({"condition": {f"predict.{goal}": {"$gte": thresholds[-1]}},
                           "matches": probability >= thresholds[-1]})
        del tree["predict"]
        cases.append({"description": f"generated visitor {i} ({('any', 'high intent', 'low intent')[i % 3]})",
                      "attributes": tree, "expected_features": features(tree), "models": models, "goals": [goal],
                      "expected": {goal: probability}, "conditions": conditions})
    return cases


def _no_model_cases(model):
    tree = {"utm": {"source": "newsletter"}, "visit": {"count": 2, "pageviews": 3}}
    reason = NO_MODEL.format(goal="signup")
    checked = [
        ({"predict.signup": {"$lt": 0.05}}, False, reason),
        ({"predict.signup": {"$gt": 0.05}}, False, reason),
        ({"predict.signup": {"$exists": False}}, False, reason),
        ({"predict.signup": None}, False, reason),
        ({"$not": {"predict.signup": {"$gt": 0.5}}}, False, reason),
        ({"$nor": [{"predict.signup": {"$gt": 0.5}}]}, False, reason),
        ({"utm.source": "newsletter", "predict.signup": {"$lt": 1}}, False, reason),
        ({"$or": [{"utm.source": "newsletter"}, {"predict.signup": {"$lt": 1}}]}, True, None),
        ({"$or": [{"utm.source": "ads"}, {"predict.signup": {"$lt": 1}}]}, False, reason),
        ({"utm.source": "newsletter"}, True, None),
    ]
    conditions = [{"condition": c, "matches": m, **({"reason": r} if r else {})} for c, m, r in checked]
    scored = install_predictions(json.loads(json.dumps(tree)), {"purchase": model}, ["purchase"])["predict"]["purchase"]
    return [{"description": "without a model for signup, any condition reaching predict.signup is false as a whole",
             "attributes": tree, "expected_features": features(tree), "models": {"purchase": model},
             "goals": ["purchase", "signup"], "expected": {"purchase": scored, "signup": None},
             "conditions": conditions},
            {"description": "a tree's own predict is replaced by the models' answer",
             "attributes": {**tree, "predict": {"purchase": 0.99, "signup": 0.5}}, "expected_features": features(tree),
             "models": {}, "goals": ["purchase"], "expected": {"purchase": None},
             "conditions": [{"condition": {"predict.purchase": 0.99}, "matches": False,
                             "reason": NO_MODEL.format(goal="purchase")}]}]


def main():
    rows, _ = generate(6000, seed=3)
    model = train(rows, "purchase")["model"]
    assert model, "the generated site must give a published model"
    rng = random.Random(8)
    cases = [{"description": d, "attributes": t, "expected_features": features(t)} for d, t in EDGES]
    cases += _no_model_cases(model) + _scored_cases(rng, {"purchase": model}, "purchase")
    for case in cases:  # the generator checks its own conditions against the Python twin
        if "goals" in case:
            tree = install_predictions(json.loads(json.dumps(case["attributes"])), case["models"], case["goals"])
            for check in case.get("conditions", []):
                assert eval_condition(check["condition"], tree) == check["matches"], check
    doc = {"specVersion": "1.0.0", "topic": "predict",
           "description": "The predict module's feature vector and scores (docs/DESIGN.md \"Predictive targeting\"): "
                          "generated by scripts/predict_vectors.py from server/predict; sdk_js/src/predict.js must "
                          "agree within 1e-9.",
           "cases": cases}
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"})[:-1]
    body = ",\n".join("  " + json.dumps(case) for case in cases)  # a case a line
    OUT.write_text(f'{head}, "cases": [\n{body}\n]}}\n', "utf-8")
    print(f"{OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
