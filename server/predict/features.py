"""The feature vector of a visitor's attribute tree (docs/DESIGN.md "Predictive targeting").

The twin of sdk_js/src/predict.js `features`: the browser records this vector with its exposures
and conversions, training reads it back, and both scorers compute it from the tree they decide
with. Every value is a number from a bounded transform of an attribute (no text, so nothing that
identifies anyone); zeros are left out. FEATURES_VERSION names the encoding in every model."""
import math
import re

FEATURES_VERSION = 1
MEDIUMS = ("direct", "search", "social", "email", "paid", "referral")
DEVICES = ("mobile", "tablet", "desktop")
HOURS = (("night", 6), ("morning", 12), ("afternoon", 18), ("evening", 24))  # each: below this hour
MAX_NAMED = 8  # event counts and crm numbers: the first 8 names in code-unit order
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def _number(x):
    return x if type(x) in (int, float) and math.isfinite(x) else 0


def _log(x, cap):
    """log(1 + x) of x clipped to [0, cap]."""
    return math.log1p(min(max(_number(x), 0), cap))


def _get(tree, path):
    for key in path.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _named(values, encode):
    """{name: encode(value)} for the first MAX_NAMED names (sorted) that have a usable value."""
    names = sorted(name for name in (values if isinstance(values, dict) else {}) if NAME.fullmatch(name))
    found = {}
    for name in names:
        value = encode(values[name])
        if value is not None:
            found[name] = value
            if len(found) == MAX_NAMED:
                break
    return found


def _crm_value(x):
    if x is True or x is False:
        return 1 if x else 0
    if type(x) in (int, float) and math.isfinite(x):
        return math.copysign(math.log1p(min(abs(x), 1e9)), x)
    return None


def features(tree):
    """{feature: value} of an attribute tree, zeros left out."""
    visit, utm, hour = _get(tree, "visit"), _get(tree, "utm"), _get(tree, "time.hour")
    visit = visit if isinstance(visit, dict) else {}
    medium, device = _get(tree, "referrer.medium"), _get(tree, "device.type")
    products, categories = _get(tree, "history.products"), _get(tree, "history.categories")
    events = _get(tree, "history.events")
    values = {
        "visit.count": _log(visit.get("count"), 1000),
        "visit.new": 1 if visit.get("new") is True else 0,
        "visit.days_since_last": _log(visit.get("days_since_last"), 365),
        "visit.pageviews": _log(visit.get("pageviews"), 1000),
        "visit.total_pageviews": _log(visit.get("total_pageviews"), 100000),
    }
    for name in MEDIUMS:
        values["medium." + name] = 1 if medium == name else 0
    values["utm"] = 1 if isinstance(utm, dict) and any(
        isinstance(utm.get(k), str) and utm.get(k) for k in ("source", "medium", "campaign")) else 0
    for name in DEVICES:
        values["device." + name] = 1 if device == name else 0
    start = 0
    for name, end in HOURS:  # no hour feature without a number
        values["hour." + name] = 1 if type(hour) in (int, float) and start <= hour < end else 0
        start = end
    values["products"] = _log(len(products) if isinstance(products, list) else 0, 20)
    values["categories"] = _log(len({c for c in categories if isinstance(c, str)})
                                if isinstance(categories, list) else 0, 20)
    values["cart.value"] = _log(_get(tree, "cart.value"), 100000)
    values["cart.items"] = _log(_get(tree, "cart.items"), 1000)
    counts = events if isinstance(events, dict) else {}
    values["events"] = _log(sum(max(_number(v), 0) for v in counts.values()), 100000)
    for name, value in _named(counts, lambda v: _log(v, 10000)).items():
        values["events." + name] = value
    for name, value in _named(_get(tree, "crm"), _crm_value).items():
        values["crm." + name] = value
    return {name: value for name, value in values.items() if value}
