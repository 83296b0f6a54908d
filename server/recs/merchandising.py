"""Merchandising rules of a site: pin, boost or bury products in every recommendation list.

    {"rules": [
      {"action": "pin", "id": "sku-42", "position": 1, "strategies": ["bought_together"]},
      {"action": "boost", "match": {"custom_label_0": "high_margin"}, "factor": 2},
      {"action": "bury", "match": {"brand": ["Acme", "Generic"]}}
    ]}

- `match` names one field: `id`, `category` (that category or below it), `brand` or
  `custom_label_0` .. `custom_label_4`, with a value or a list of values (any of them matches).
- boost multiplies a product's score by `factor` (above 1, at most 100, default 2), within the
  step of the fallback chain that proposed it; bury puts matching products after every other one,
  fallbacks included (their order kept); pin puts product `id` at `position`
  (1-based, default 1) whenever it passes the request's filters, even when the strategy did not
  propose it. Rules apply in order; `strategies` (default: all) limits a rule to some strategies.
- Pins, boosts and buries change the order of what is served, never which steps serve."""
from server.catalog.products import (
    CUSTOM_LABELS,
    category,
    in_category,
    item_id_problem,
    normalise_category,
)
from server.recs.strategies import STRATEGIES

ACTIONS = ("pin", "boost", "bury")
MATCH_FIELDS = ("id", "category", "brand", *CUSTOM_LABELS)
MAX_RULES = 100
MAX_VALUES = 100
MAX_POSITION = 20


def _p(path, message):
    return {"path": path, "message": message}


def validate_rules(body, strategies=STRATEGIES):
    """(normalised rules document, problems)."""
    if not isinstance(body, dict) or set(body) != {"rules"} or not isinstance(body["rules"], list):
        return None, [_p("", 'must be {"rules": [...]}')]
    if len(body["rules"]) > MAX_RULES:
        return None, [_p("/rules", f"at most {MAX_RULES} rules")]
    problems, rules = [], []
    for i, rule in enumerate(body["rules"]):
        at = f"/rules/{i}"
        if not isinstance(rule, dict):
            problems.append(_p(at, "must be an object"))
            continue
        rule_problems = []
        rules.append(_rule(rule, at, rule_problems, strategies))
        problems += rule_problems
    return ({"rules": rules} if not problems else None), problems


def _rule(rule, at, problems, strategies):
    action = rule.get("action")
    if action not in ACTIONS:
        problems.append(_p(at + "/action", f"must be one of {', '.join(ACTIONS)}"))
        return None
    allowed = {"action", "strategies"} | ({"id", "position"} if action == "pin" else {"match"}) \
        | ({"factor"} if action == "boost" else set())
    extra = set(rule) - allowed
    if extra:
        problems.append(_p(at, f"unknown fields for {action}: {', '.join(sorted(extra))}"))
    out = {"action": action}
    if action == "pin":
        problem = item_id_problem(rule.get("id"))
        if problem:
            problems.append(_p(at + "/id", problem))
        position = rule.get("position", 1)
        if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION:
            problems.append(_p(at + "/position", f"must be an integer from 1 to {MAX_POSITION}"))
        out.update(id=rule.get("id"), position=position)
    else:
        out["match"] = _match(rule.get("match"), at + "/match", problems)
    if action == "boost":
        factor = rule.get("factor", 2)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 < factor <= 100:
            problems.append(_p(at + "/factor", "must be a number above 1, at most 100"))
        out["factor"] = factor
    if "strategies" in rule:
        names = rule["strategies"]
        if not isinstance(names, list) or not names or any(n not in strategies for n in names):
            problems.append(_p(at + "/strategies", f"must be a list of strategies: {', '.join(strategies)}"))
        out["strategies"] = names
    return out


def _match(match, at, problems):
    if not isinstance(match, dict) or len(match) != 1:
        problems.append(_p(at, f"must name one field: {', '.join(MATCH_FIELDS)}"))
        return None
    (field, value), = match.items()
    if field not in MATCH_FIELDS:
        problems.append(_p(at, f"must name one field: {', '.join(MATCH_FIELDS)}"))
        return None
    values = value if isinstance(value, list) else [value]
    if not 1 <= len(values) <= MAX_VALUES or any(not isinstance(v, str) or not v or len(v) > 750 for v in values):
        problems.append(_p(f"{at}/{field}", f"must be a non-empty string or a list of 1 to {MAX_VALUES} of them"))
        return None
    if field == "category":
        values = [normalise_category(v) for v in values]
    return {field: values if isinstance(value, list) else values[0]}


def _matches(match, product):
    (field, wanted), = match.items()
    wanted = wanted if isinstance(wanted, list) else [wanted]
    if field == "category":
        return any(in_category(category(product), w) for w in wanted)
    return product.get(field) in wanted


def rules_for(document, strategy):
    """The rules of a stored document that apply to `strategy`."""
    return [r for r in (document or {}).get("rules", ()) if strategy in r.get("strategies", (strategy,))]


def pinned_ids(rules):
    return [r["id"] for r in rules if r["action"] == "pin"]


def reorders(rules):
    """Whether the rules may move a product up past others (a boost)."""
    return any(r["action"] == "boost" for r in rules)


def order(rules, scored):
    """([product], [buried product]) from [(product, score)]: boosted scores, ties by id."""
    boosts = [r for r in rules if r["action"] == "boost"]
    buries = [r["match"] for r in rules if r["action"] == "bury"]
    ranked = []
    for product, score in scored:
        for rule in boosts:
            if _matches(rule["match"], product):
                score *= rule["factor"]
        ranked.append((-score, product["id"], product))
    ranked.sort(key=lambda row: row[:2])
    kept, buried = [], []
    for _, _, product in ranked:
        (buried if any(_matches(match, product) for match in buries) else kept).append(product)
    return kept, buried


def pin(rules, products, pinned):
    """The pinned products ({id: product}, those that pass the filters) at their positions."""
    for rule in rules:
        if rule["action"] == "pin" and rule["id"] in pinned:
            products = [p for p in products if p["id"] != rule["id"]]
            products.insert(min(rule["position"] - 1, len(products)), pinned[rule["id"]])
    return products
