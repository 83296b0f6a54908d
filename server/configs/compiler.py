"""Compile a valid draft into the bundle the SDK and `decide` read (docs/DESIGN.md)."""
from datetime import datetime, timezone

DEFAULT_SETTINGS = {"holdout": 0.0, "consent": "implied", "antiflicker_ms": 400}
# Settings the server alone reads, kept with the version rather than in the bundle, which every
# visitor downloads (tag.js must not list the shop's internal addresses).
PRIVATE_SETTINGS = ("exclude_ips",)
DEFAULT_ALLOCATION = {"mode": "adaptive", "by": [], "explore": 0.1, "min_visitors": 200}
# The hashing scheme buckets are computed with (docs/DESIGN.md "Hashing and bucketing"). A new scheme gets a
# new number, so an evaluator that does not know it decides nothing instead of reassigning everyone.
HASH_VERSION = 1
# What a recommend action without a template shows for each product (sanitised HTML, like a merchant's).
DEFAULT_TEMPLATE = ('<a href="{{link}}"><img src="{{image_link}}" alt="" loading="lazy"> '
                    '<span>{{title}}</span> <span>{{price}}</span></a>')
DEFAULT_RECOMMENDATIONS = 4
# Vitrina's own goals, added to every campaign with a recommend action: a click on a recommended
# product, its "add to cart" button, and the revenue of recommended products bought in the session.
RECOMMENDATION_GOALS = {"recommendation_click": {"recommendation": "click"},
                        "recommendation_add": {"recommendation": "add"},
                        "recommendation_purchase": {"recommendation": "purchase"}}


def _action(action):
    if "recommend" not in action:
        return action
    recommend = {"n": DEFAULT_RECOMMENDATIONS, "template": DEFAULT_TEMPLATE, **action["recommend"]}
    return {**action, "recommend": recommend}


def _recommends(campaign):
    return any("recommend" in a for v in campaign["variations"] for a in v.get("actions", []))


def compile_campaign(campaign):
    variations = campaign["variations"]
    weights = [v.get("weight", 1.0) for v in variations]
    total = sum(weights) or 1.0
    return {
        "key": campaign["key"],
        "type": campaign.get("type", "personalization"),
        "seed": campaign.get("seed", campaign["key"]),
        "segment": campaign.get("segment"),
        "conditions": campaign.get("conditions"),
        "pages": campaign.get("pages"),
        "trigger": campaign.get("trigger"),
        "priority": campaign.get("priority", 0),
        "group": campaign.get("group"),
        "schedule": {"start": None, "end": None, **(campaign.get("schedule") or {})},
        "cap": {"per_visitor": None, "per_session": None, **(campaign.get("cap") or {})},
        "traffic": campaign.get("traffic", 1),
        "bucket_by": campaign.get("bucket_by", "visitor"),
        "variations": [{"key": v["key"], "weight": w / total, "actions": [_action(a) for a in v.get("actions", [])]}
                       for v, w in zip(variations, weights)],
        "goals": campaign.get("goals", []) + [g for g in RECOMMENDATION_GOALS if _recommends(campaign)
                                               and g not in campaign.get("goals", [])],
        # Results' test settings; only when set, so the bundle (shipped in every tag.js) stays small.
        **({"stats": campaign["stats"]} if campaign.get("stats") else {}),
        # Alerts (results and the worker): goals that must not get worse, and whether to pause then.
        **({"guardrails": campaign["guardrails"]} if campaign.get("guardrails") else {}),
        **({"auto_pause": True} if campaign.get("auto_pause") else {}),
        # Adaptive campaigns only: the SDK reads `by`, the worker the rest (a fixed split says nothing).
        **({"allocation": {**DEFAULT_ALLOCATION, **campaign["allocation"]}}
           if (campaign.get("allocation") or {}).get("mode") == "adaptive" else {}),
    }


def condition_paths(condition):
    """Every attribute path a condition reads (not the element paths inside $elemMatch)."""
    if not isinstance(condition, dict):
        return
    for key, value in condition.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for part in value:
                yield from condition_paths(part)
        elif key == "$not":
            yield from condition_paths(value)
        elif not key.startswith("$"):
            yield key


def namespace_names(campaigns, segments, goals, namespace):
    """The names under `namespace` (crm, predict) that live campaigns (segment, conditions, pages)
    and pageview goals read, sorted; "*" when one reads the whole namespace."""
    conditions = [segments.get(c["segment"]) for c in campaigns if c["segment"] is not None]
    conditions += [c[field] for c in campaigns for field in ("conditions", "pages") if c[field] is not None]
    conditions += [goal["pageview"] for goal in goals.values() if "pageview" in goal]
    names = set()
    for condition in conditions:
        for path in condition_paths(condition):
            if path == namespace:
                names.add("*")
            elif path.startswith(namespace + "."):
                names.add(path.split(".")[1])
    return sorted(names)


def crm_attributes(campaigns, segments, goals):
    """The crm names live campaigns and pageview goals read: /identify answers only these."""
    return namespace_names(campaigns, segments, goals, "crm")


def compile_bundle(site, version, config, now=None):
    now = now or datetime.now(timezone.utc)
    live = [c for c in config.get("campaigns", []) if c.get("status", "live") == "live"]
    # sorted() is stable: equal priorities keep the merchant's order.
    campaigns = sorted((compile_campaign(c) for c in live), key=lambda c: -c["priority"])
    used_goals = {g for c in campaigns for g in c["goals"] + c.get("guardrails", [])}
    goals = {**config.get("goals", {}), **{g: RECOMMENDATION_GOALS[g] for g in used_goals & set(RECOMMENDATION_GOALS)}}
    predicted = [g for g in namespace_names(campaigns, config.get("segments", {}), goals, "predict") if g != "*"]
    return {
        "site": site,
        "version": version,
        "hash": HASH_VERSION,
        "published_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "segments": config.get("segments", {}),
        # Every goal ships: a goal unused by a campaign still records conversions for the holdout report.
        "goals": {k: goals[k] for k in sorted(set(goals) | used_goals) if k in goals},
        "campaigns": campaigns,
        "crm": crm_attributes(campaigns, config.get("segments", {}), goals),
        "settings": compile_settings(config.get("settings", {})),
        # the goals conditions read as predict.<goal>: the predict module scores them, and a goal
        # without a model makes them false (set only when not empty)
        **({"predict": predicted} if predicted else {}),
    }


def compile_settings(settings):
    """The defaults filled in, private settings left out; referral exclusions as the attribution module compares hosts
    (lowercase, without "www.": sdk_js/src/attribution.js bareHost)."""
    compiled = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if k not in PRIVATE_SETTINGS}}
    if "referral_exclusions" in compiled:
        compiled["referral_exclusions"] = list(dict.fromkeys(
            host.lower().removeprefix("www.") for host in compiled["referral_exclusions"]))
    return compiled


def private_settings(config):
    """The settings of PRIVATE_SETTINGS that the config sets, stored beside its version."""
    settings = config.get("settings", {})
    return {k: settings[k] for k in PRIVATE_SETTINGS if k in settings}
