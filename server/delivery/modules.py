"""What the tag of a published bundle carries (docs/DESIGN.md "Modules"): the optional SDK modules
it needs, and what it watches after init.

One rule per module, by the name sdk_js/build.mjs gives its file (dist/manifest.json). A bundle
that needs none gets the core alone."""
import re

from server.configs.placeholders import has_placeholders, names

# The behaviour the triggers module watches, which conditions may read too.
BEHAVIOUR_PATH = re.compile(r"page(?:\.(?:scroll|idle|exit_intent))?")
# Where the visitor comes from, which the attribution module works out.
SOURCE_PATH = re.compile(r"referrer(?:\.(?:source|medium))?")
# The server-resolved attributes, or a whole object holding them (sdk_js/src/context.js SERVER_PATH).
SERVER_PATH = re.compile(r"geo(?:\..*)?|device(?:\.(?:os|browser)(?:\..*)?)?")


# Condition operators that only the operators module evaluates (sdk_js/src/operators.js).
RARE_OPERATORS = frozenset({"$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte", "$all", "$alli", "$size", "$type",
                            "$elemMatch"})


def _conditions(bundle):
    """Every condition a decision or a page-view goal evaluates: campaign pages, segments and
    conditions, page-view goals."""
    segments = bundle.get("segments") or {}
    for campaign in bundle.get("campaigns") or []:
        yield campaign.get("pages")
        yield campaign.get("conditions")
        if campaign.get("segment") is not None:
            yield segments.get(campaign["segment"])
        for entry in (campaign.get("allocation") or {}).get("by") or []:  # an adaptive campaign's slices
            yield segments.get(entry[8:]) if entry.startswith("segment:") else {entry: None}
    for goal in (bundle.get("goals") or {}).values():
        if isinstance(goal, dict):
            yield goal.get("pageview")


def _keys(value):
    """Every object key in a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, nested in value.items():
            yield key
            yield from _keys(nested)
    elif isinstance(value, list):
        for nested in value:
            yield from _keys(nested)


def condition_paths(condition):
    """The attribute paths a condition reads: its keys, through $and, $or, $nor and $not
    (sdk_js/src/reads.js conditionPaths is the twin)."""
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
    return any(pattern.fullmatch(path) for condition in _conditions(bundle) for path in condition_paths(condition))


def _actions(bundle):
    for campaign in bundle.get("campaigns") or []:
        for variation in campaign.get("variations") or []:
            yield from (a for a in variation.get("actions") or [] if isinstance(a, dict))


def _uses_identity(bundle):
    """A condition on crm.* (the compiler lists the names in the bundle's `crm`) or a campaign
    bucketed by customer."""
    return bool(bundle.get("crm")) or any(c.get("bucket_by") == "customer" for c in bundle.get("campaigns") or [])


CART_PATH = re.compile(r"cart(?:\..*)?")


def _placeholder_names(bundle):
    return [name for action in _actions(bundle) for field in ("text", "html") if has_placeholders(action.get(field))
            for name in names(action[field])]


def needs_recommend(bundle):
    """Recommendations, placeholders and reordering are the recommend module's."""
    return any("recommend" in a or "reorder" in a for a in _actions(bundle)) or bool(_placeholder_names(bundle))


def needs_commerce(bundle):
    """The cart kept for the session and GA4 signals: asked for by the site, or read by a campaign
    (a recommendation leaves the cart's items out; a placeholder or condition reads cart.*)."""
    return ((bundle.get("settings") or {}).get("ecommerce") is True
            or any("recommend" in a for a in _actions(bundle))
            or any(CART_PATH.fullmatch(name) for name in _placeholder_names(bundle))
            or reads(bundle, CART_PATH))


def has_results(bundle):
    """A campaign whose results count browsers: every published campaign (only live ones are, and
    each enters a share of its visitors above 0: none is there for forced QA views alone)."""
    return bool(bundle.get("campaigns"))


MODULES = {
    # adaptive allocation: a campaign's slice (its `allocation.by`) and the served revision's weights for it
    "adaptive": lambda bundle: any(c.get("allocation") for c in bundle.get("campaigns") or []),
    # referrer.source and referrer.medium: the page view's source, by referrer and campaign parameters
    # (the predict module's features read the medium, and the slices module's acquisition)
    "attribution": lambda bundle: reads(bundle, SOURCE_PATH) or bool(bundle.get("predict")) or has_results(bundle),
    # GA4 e-commerce from the data layer: the cart kept for the session, item signals, purchases with order ids
    "commerce": needs_commerce,
    # waiting for geo and device.os/browser when the page did not give them, and the context a
    # placeholder shows; the identity module waits for the customer with its check
    "context": lambda bundle: (reads(bundle, SERVER_PATH) or _uses_identity(bundle)
                               or any(SERVER_PATH.fullmatch(name) for name in _placeholder_names(bundle))),
    # click and page-view goals (event goals are the core's)
    "goals": lambda bundle: any(isinstance(goal, dict) and (goal.get("click") is not None or goal.get("pageview") is not None)
                                for goal in (bundle.get("goals") or {}).values()),
    # known customers; without it vitrina.identify() does nothing
    "identity": _uses_identity,
    # HTML inserted before, after or into an element
    "inserts": lambda bundle: any(action.get(name) is not None for action in _actions(bundle)
                                  for name in ("insertBefore", "insertAfter", "append")),
    # $v*, $all, $size, $type, $elemMatch
    "operators": lambda bundle: any(key in RARE_OPERATORS for condition in _conditions(bundle) for key in _keys(condition)),
    # predict.<goal> in conditions (the compiler lists the goals in the bundle's `predict`): scores
    # the published models and records the feature vector with the events training learns from
    "predict": lambda bundle: bool(bundle.get("predict")),
    # recommend actions, placeholders (product data, live counts), reorder
    "recommend": needs_recommend,
    # split-URL variations
    "redirect": lambda bundle: any(action.get("redirect") for action in _actions(bundle)),
    # what each campaign's first exposure claims for results' breakdown (segments, acquisition,
    # visits before), and the ?vitrina_internal mark that keeps QA traffic out of results
    "slices": lambda bundle: has_results(bundle),
    # style and hide actions, one op per style property
    "styles": lambda bundle: any(action.get("style") or action.get("hide") for action in _actions(bundle)),
    # behavioural triggers, and the page behaviour (scroll, idle, exit intent) they share with conditions
    "triggers": lambda bundle: (any(c.get("trigger") is not None for c in bundle.get("campaigns") or [])
                                or reads(bundle, BEHAVIOUR_PATH)),
}


# What the tag works for only when a condition reads it (vitrina.init's `reads`): the server-resolved
# context (the context module asks for it); the data layer's viewed products, read before each
# decision; the document (title, page type, lang, and the data layer), decided again at
# DOMContentLoaded.
PRODUCT_PATH = r"history(?:\.(?:products|categories)(?:\..*)?)?"
READS = {
    "context": SERVER_PATH,
    "document": re.compile(rf"page(?:\.(?:title|type|lang))?|{PRODUCT_PATH}"),
    "products": re.compile(PRODUCT_PATH),
}


def reads_for(bundle):
    """vitrina.init's `reads` for `bundle`, sorted (the predict module's features count the viewed
    products, so a bundle reading predict.* reads them)."""
    return sorted(name for name, pattern in READS.items()
                  if bundle and (reads(bundle, pattern) or name == "products" and bundle.get("predict")))


def modules_for(bundle):
    """The names of the modules `bundle` needs, sorted (tag.js joins them in this order)."""
    return sorted(name for name, needed in MODULES.items() if bundle and needed(bundle))
