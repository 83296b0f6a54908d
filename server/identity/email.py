"""What a customer gets in an email: per campaign, the variation the customer is bucketed into,
its actions and the recommendation items it would show, as data for an email platform; each
decision is recorded as an exposure in channel `email`, so results tell web and email apart
and the customer's later conversions on the site count for it.

The decision is the site's: the latest published version, `decide` with the customer key as
both visitor and customer, crm attributes resolved on the server and time at the moment of the
request. What belongs to a web page does not apply: `pages` and `trigger` are left out."""
import json
import secrets
import time

from server.decisions.decide import decide
from server.decisions.inputs import time_attributes
from server.events.days import day_of
from server.identity import customers, site_secrets
from server.recs.serve import Query, recommend
from server.recs.strategies import STRATEGIES
from server.store import get_store

MAX_RECOMMENDED = 20


def _recommendations(store, site, action, rules):
    """The items of a `recommend` action ({"strategy", "items", "n"}): anchors only when it lists
    product ids (an email has no cart, page or browsing history), so strategies fall back as
    their chains say."""
    spec = action["recommend"] if isinstance(action.get("recommend"), dict) else {}
    strategy = spec.get("strategy") if spec.get("strategy") in STRATEGIES else "bestsellers"
    anchors = tuple(i for i in spec.get("items") or () if isinstance(i, str))[:20] \
        if isinstance(spec.get("items"), list) else ()
    n = spec.get("n") if isinstance(spec.get("n"), int) and 1 <= spec.get("n") <= MAX_RECOMMENDED else 4
    answer = recommend(store, site, Query(strategy=strategy, items=anchors, n=n), rules)
    return {"selector": action.get("selector"), **answer}


def content(site, bundle, customer_id, campaign_keys, zone):
    """{"customer": {"known"}, "campaigns": [{key, variation, holdout, reason, actions,
    recommendations}]}, with the exposures recorded."""
    store = get_store()
    now = time.time() * 1000
    key = site_secrets.customer_key(site, customer_id)
    crm, known = customers.resolve(site, customer_id, now_ms=now)
    email_bundle = {**bundle, "campaigns": [{**c, "pages": None, "trigger": None} for c in bundle["campaigns"]]}
    decided = decide(email_bundle, {"crm": crm, "time": time_attributes(now, zone)}, key, now=now, customer=key)
    by_key = {c["key"]: c for c in bundle["campaigns"]}
    raw_rules = store.get_merchandising(site)
    rules = json.loads(raw_rules) if raw_rules else None
    answers, exposures = [], []
    for campaign_key in campaign_keys:
        variation = decided["variations"].get(campaign_key)
        holdout = campaign_key in decided["holdout_campaigns"]
        actions = next((v.get("actions") or [] for v in by_key[campaign_key]["variations"]
                        if v["key"] == variation), [])
        answers.append({"key": campaign_key, "variation": variation, "holdout": holdout,
                        "reason": decided["reasons"].get(campaign_key), "actions": actions,
                        "recommendations": [_recommendations(store, site, a, rules) for a in actions
                                            if isinstance(a, dict) and "recommend" in a]})
        if variation is not None or holdout:
            exposures.append(_exposure(bundle, campaign_key, variation, now))
    if exposures:
        store.record_events(site, key, exposures)
    return {"customer": {"known": known}, "campaigns": answers}


def _exposure(bundle, campaign, variation, now):
    event = {"id": "email-" + secrets.token_hex(10), "type": "exposure", "version": bundle["version"], "ts": int(now),
             "campaign": campaign, "variation": variation, "holdout": variation is None, "channel": "email"}
    event["_json"] = json.dumps(event, separators=(",", ":"))
    event["_day"] = day_of(now, bundle.get("settings", {}).get("timezone"), now / 1000)  # the daily series
    return event
