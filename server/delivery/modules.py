"""Which optional SDK modules a published bundle needs in its tag.js (docs/DESIGN.md "Modules").

One rule per module, by the name sdk_js/build.mjs gives its file (dist/manifest.json). A bundle
that needs none gets the core alone."""
import re

from server.configs.placeholders import has_placeholders, names

# The behaviour the triggers module watches, which conditions may read too.
BEHAVIOUR_PATH = re.compile(r"page(?:\.(?:scroll|idle|exit_intent))?")


def condition_paths(condition):
    """The attribute paths a condition reads: its keys, through $and, $or, $nor and $not
    (sdk_js/src/context.js conditionPaths is the twin)."""
    if not isinstance(condition, dict):
        return []
    paths = []
    for key, value in condition.items():
        if key == "$not":
            paths += condition_paths(value)
        elif key in ("$and", "$or", "$nor"):
            for nested in value if isinstance(value, list) else []:
                paths += condition_paths(nested)
        else:
            paths.append(key)
    return paths


def reads(bundle, pattern):
    """Whether a campaign (pages, segment, conditions) or a page-view goal reads a path matching `pattern`."""
    segments = bundle.get("segments") or {}
    conditions = [c.get(field) for c in bundle.get("campaigns") or [] for field in ("pages", "conditions")]
    conditions += [segments.get(c["segment"]) for c in bundle.get("campaigns") or [] if c.get("segment") is not None]
    conditions += [goal.get("pageview") for goal in (bundle.get("goals") or {}).values() if isinstance(goal, dict)]
    return any(pattern.fullmatch(path) for condition in conditions for path in condition_paths(condition))


CART_PATH = re.compile(r"cart(?:\..*)?")


def actions(bundle):
    """Every action of every variation of the bundle."""
    return [action for c in bundle.get("campaigns") or [] for v in c.get("variations") or []
            for action in v.get("actions") or [] if isinstance(action, dict)]


def _placeholder_names(bundle):
    return [name for action in actions(bundle) for field in ("text", "html") if has_placeholders(action.get(field))
            for name in names(action[field])]


def needs_recommend(bundle):
    """Recommendations, placeholders and reordering are the recommend module's."""
    return any("recommend" in a or "reorder" in a for a in actions(bundle)) or bool(_placeholder_names(bundle))


def needs_commerce(bundle):
    """The cart kept for the session and GA4 signals: asked for by the site, or read by a campaign
    (a recommendation leaves the cart's items out; a placeholder or condition reads cart.*)."""
    return ((bundle.get("settings") or {}).get("ecommerce") is True
            or any("recommend" in a for a in actions(bundle))
            or any(CART_PATH.fullmatch(name) for name in _placeholder_names(bundle))
            or reads(bundle, CART_PATH))


MODULES = {
    # GA4 e-commerce from the data layer: the cart kept for the session, item signals, purchases with order ids
    "commerce": needs_commerce,
    # known customers: a condition on crm.* (the compiler lists the names in the bundle's `crm`) or a
    # campaign bucketed by customer; the core's vitrina.identify() says so in the debug log otherwise
    "identity": lambda bundle: (bool(bundle.get("crm"))
                                or any(c.get("bucket_by") == "customer" for c in bundle.get("campaigns") or [])),
    # recommend actions, placeholders (product data, live counts), reorder
    "recommend": needs_recommend,
    # behavioural triggers, and the page behaviour (scroll, idle, exit intent) they share with conditions
    "triggers": lambda bundle: (any(c.get("trigger") is not None for c in bundle.get("campaigns") or [])
                                or reads(bundle, BEHAVIOUR_PATH)),
}


def modules_for(bundle):
    """The names of the modules `bundle` needs, sorted (tag.js joins them in this order)."""
    return sorted(name for name, needed in MODULES.items() if bundle and needed(bundle))
