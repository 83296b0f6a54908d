"""Results per campaign and variation, assembled from the store's counters."""
from collections import defaultdict

from server.configs import publishing
from server.results.stats import compare_proportions, srm_check, welch
from server.store import get_store


def _goal_stats(counter, visitors):
    conversions = counter["conversions"] if counter else 0
    return {"conversions": conversions,
            "rate": round(conversions / visitors, 6) if visitors else 0.0,
            "revenue": round(counter["revenue"], 2) if counter else 0.0}


def _revenue_sums(arm_rows, goal):
    counter = arm_rows.get(goal)
    return (counter["revenue"], counter["revenue_sq"]) if counter else (0.0, 0.0)


def _arm(key, rows, goals):
    visitors = rows[None]["visitors"] if None in rows else 0
    arm = {"visitors": visitors, "goals": {g: _goal_stats(rows.get(g), visitors) for g in goals}}
    return {"key": key, **arm} if key is not None else arm


def site_results(site):
    latest = publishing.load_latest(site)
    bundle = latest[0] if latest else {"version": None, "campaigns": []}
    # counters[campaign][variation][goal or None] -> counter row
    counters = defaultdict(lambda: defaultdict(dict))
    for row in get_store().counters(site):
        counters[row["campaign"]][row["variation"]][row["goal"]] = row
    configured = {c["key"]: c for c in bundle["campaigns"]}
    keys = list(configured) + sorted(set(counters) - set(configured))
    return {"site": site, "version": bundle["version"],
            "campaigns": [_campaign(key, configured.get(key), counters.get(key, {})) for key in keys],
            # events refused by collect, by reason: forged or broken traffic is visible, never counted
            "rejected": get_store().rejections(site)}


def _campaign(key, campaign, arms):
    configured = [v["key"] for v in campaign["variations"]] if campaign else []
    variation_keys = configured + sorted(k for k in arms if k is not None and k not in configured)
    goals = list(campaign["goals"]) if campaign else []
    goals += sorted({g for rows in arms.values() for g in rows if g is not None and g not in goals})
    variations = [_arm(v, arms.get(v, {}), goals) for v in variation_keys]
    holdout = _arm(None, arms.get(None, {}), goals)
    sums = {v: {g: _revenue_sums(arms.get(v, {}), g) for g in goals} for v in variation_keys + [None]}
    weights = {v["key"]: v["weight"] for v in campaign["variations"]} if campaign else {}
    srm = srm_check([v["visitors"] for v in variations if v["key"] in weights],
                    [weights[v["key"]] for v in variations if v["key"] in weights])
    return {"key": key, "type": campaign["type"] if campaign else None, "variations": variations,
            "holdout": holdout, "srm": srm, "comparisons": _comparisons(variations, holdout, goals, sums)}


def _comparisons(variations, holdout, goals, sums):
    """Each variation against control and against the holdout, per goal: conversion rate
    (two-proportion z-test) and, where there is revenue, revenue per visitor (Welch)."""
    control = next((v for v in variations if v["key"] == "control"), None)
    out = []
    for v in variations:
        for baseline_name, baseline in (("control", control), ("holdout", holdout)):
            if baseline is None or baseline is v:
                continue
            for g in goals:
                stats = compare_proportions(baseline["goals"][g]["conversions"], baseline["visitors"],
                                            v["goals"][g]["conversions"], v["visitors"])
                row = {"variation": v["key"], "vs": baseline_name, "goal": g, **stats}
                base_key = None if baseline is holdout else "control"
                (sum_a, sq_a), (sum_b, sq_b) = sums[base_key][g], sums[v["key"]][g]
                if sum_a or sum_b:
                    row["revenue_per_visitor"] = welch(sum_a, sq_a, baseline["visitors"], sum_b, sq_b, v["visitors"])
                out.append(row)
    return out
