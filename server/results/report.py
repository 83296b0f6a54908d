"""Results per campaign: each arm's counters from the store, compared by server/results/stats.py
(docs/DESIGN.md "Results" describes every field)."""
import math
from collections import defaultdict

from server.allocation.report import allocation_result
from server.configs import publishing
from server.results import stats
from server.store import get_store
from server.store.base import read_label

DEFAULT_STATS = {"mode": "sequential", "alpha": 0.05}
MIN_VISITORS = 100  # per arm: below, a comparison says "not_enough_data" instead of a number
MIN_CONVERSIONS = 5  # per arm and goal (orders, for aov): the normal approximation's usual floor
SRM_MIN_EXPECTED = 5  # visitors expected in every arm before the chi-square check means anything


def site_results(site, all_goals=False, channel=None):
    """Every campaign of the latest version, then campaigns no longer published that still have
    counters. Only a campaign's own goals unless all_goals (a campaign no longer published shows
    every goal it has counters for: its list is gone). With a channel ("web", "email"), only the
    units whose first exposure came through it (and their conversions)."""
    latest = publishing.load_latest(site)
    bundle = latest[0] if latest else {"version": None, "campaigns": [], "settings": {}}
    counters = defaultdict(lambda: defaultdict(dict))  # campaign -> variation (None: holdout) -> goal (None: visitors) -> row
    for row in get_store().counters(site, channel):
        counters[row["campaign"]][row["variation"]][row["goal"]] = row
    configured = {c["key"]: c for c in bundle["campaigns"]}
    keys = list(configured) + sorted(set(counters) - set(configured))
    site_stats = bundle.get("settings", {}).get("stats")
    campaigns = [campaign_result(key, configured.get(key), counters.get(key, {}), site_stats, all_goals)
                 for key in keys]
    adaptive = [c for c in bundle["campaigns"] if c.get("allocation")]
    if adaptive:
        rows = get_store().labelled_counters(site)
        revisions = {read_label(r["channel"])[1] for r in rows} - {None}
        documents = {n: publishing.load_revision(site, n) for n in revisions}
        for result, campaign in ((r, configured[r["key"]]) for r in campaigns if r["key"] in configured):
            if campaign.get("allocation"):
                # weights move on purpose: the split is checked per revision, against what each served
                result["srm"] = {"status": "not_applicable", "p_value": None, "ok": None}
                result["allocation"] = allocation_result(campaign, rows, bundle.get("revision"), documents)
    return {"site": site, "version": bundle["version"], **({"channel": channel} if channel else {}),
            "campaigns": campaigns,
            # events refused by collect, by reason: forged or broken traffic is visible, never counted
            "rejected": get_store().rejections(site)}


def stats_settings(site_stats, campaign):
    """The campaign's test settings: its own `stats`, over the site's `settings.stats`, over the defaults."""
    return {**DEFAULT_STATS, **(site_stats or {}), **((campaign or {}).get("stats") or {})}


def campaign_result(key, campaign, arms, site_stats=None, all_goals=False):
    settings = stats_settings(site_stats, campaign)
    goals = _goals(campaign, arms, all_goals)
    result = slice_result(campaign, arms, goals, settings)
    adjust(result["comparisons"])
    return {"key": key, "type": campaign["type"] if campaign else None,
            "stats": {**settings, "min_visitors": MIN_VISITORS, "min_conversions": MIN_CONVERSIONS},
            "goals": goals, **result}


def _goals(campaign, arms, all_goals):
    listed = list(campaign["goals"]) if campaign else []
    counted = sorted({g for rows in arms.values() for g in rows if g is not None and g not in listed})
    return listed + counted if all_goals or campaign is None else listed


def slice_result(campaign, arms, goals, settings):
    """{variations, holdout, srm, comparisons} of one campaign over one slice of its visitors,
    from that slice's counters `arms` ({variation key or None: {goal or None: counter row}}).
    Comparisons are not adjusted for multiplicity here: `adjust` does, over the whole family."""
    configured = [v["key"] for v in campaign["variations"]] if campaign else []
    keys = configured + sorted(k for k in arms if k is not None and k not in configured)
    rows = {k: arms.get(k, {}) for k in keys + [None]}
    variations = [{"key": k, **_arm(rows[k], goals)} for k in keys]
    weights = {v["key"]: v["weight"] for v in campaign["variations"]} if campaign else {}
    return {"variations": variations, "holdout": _arm(rows[None], goals),
            "srm": _srm([v["visitors"] for v in variations if v["key"] in weights],
                        [weights[v["key"]] for v in variations if v["key"] in weights]),
            "comparisons": _comparisons(keys, rows, goals, settings)}


def _visitors(rows):
    return rows[None]["visitors"] if None in rows else 0


def _arm(rows, goals):
    visitors = _visitors(rows)
    return {"visitors": visitors, "goals": {g: _goal_summary(rows.get(g), visitors) for g in goals}}


def _goal_summary(row, visitors):
    row = row or {}
    conversions, revenue, orders = row.get("conversions", 0), row.get("revenue", 0.0), row.get("orders")
    return {"conversions": conversions,
            "rate": round(conversions / visitors, 6) if visitors else 0.0,
            "revenue": _amount(revenue, 2),
            "revenue_per_visitor": _amount(revenue / visitors, 4) if visitors else 0.0,
            "orders": orders,  # null until purchases carry order ids and the stores count them
            "aov": _amount(revenue / orders, 2) if orders else None}


def _amount(x, digits):
    return round(x, digits) if math.isfinite(x) else None  # a sum past float64's range: JSON has no inf


def _srm(observed, weights):
    if len(observed) < 2:
        return {"status": "not_applicable", "p_value": None, "ok": None}
    total, weight = sum(observed), sum(weights)
    if min(total * w / weight for w in weights if w > 0) < SRM_MIN_EXPECTED or total < MIN_VISITORS:
        return {"status": "not_enough_data", "p_value": None, "ok": None}
    checked = stats.srm_check(observed, weights)
    if checked is None:
        return {"status": "not_applicable", "p_value": None, "ok": None}
    p_value, ok = checked
    return {"status": "ok" if ok else "mismatch", "p_value": _round(p_value), "ok": ok}


def _metrics(goal, rows):
    """The goal's metrics: the conversion rate always; revenue per visitor once any arm has
    revenue; the average order value once any arm has orders."""
    counted = [r[goal] for r in rows.values() if goal in r]
    metrics = ["conversion_rate"]
    if any(r["revenue"] or r["revenue_sq"] for r in counted):
        metrics.append("revenue_per_visitor")
    if any(r.get("orders") for r in counted):
        metrics.append("aov")
    return metrics


def _comparisons(keys, rows, goals, settings):
    """Each variation against `control` (a variation of that key) and against the holdout, per
    goal and metric."""
    metrics = {g: _metrics(g, rows) for g in goals}
    out = []
    for key in keys:
        for vs, baseline in (("control", "control"), ("holdout", None)):
            if baseline == key or (baseline is not None and baseline not in keys):
                continue
            for goal in goals:
                for metric in metrics[goal]:
                    out.append({"variation": key, "vs": vs, "goal": goal, "metric": metric,
                                **compare_arms(rows[baseline], rows[key], goal, metric, settings)})
    return out


def compare_arms(base_rows, rows, goal, metric, settings):
    """One comparison's figures, from the counters of the baseline arm and of the variation."""
    mode, alpha = settings["mode"], settings["alpha"]
    empty = {"method": mode, "status": "not_enough_data", "uplift": None, "ci": None, "p_value": None,
             "adjusted_p_value": None, "bayes": None, "cuped": None}
    if not (_enough(base_rows, goal, metric) and _enough(rows, goal, metric)):
        return empty
    base, arm = _estimate(base_rows, goal, metric), _estimate(rows, goal, metric)
    welch = metric != "conversion_rate"
    result = stats.compare(base, arm, mode, alpha, welch)
    if result is None:
        return empty
    if metric == "conversion_rate":
        bayes = stats.bayes_rates(_count(base_rows, goal, metric), base.n, _count(rows, goal, metric), arm.n)
    else:
        bayes = stats.bayes_normal(base, arm)
    return {"method": mode, "status": "ok", **_figures(result), "adjusted_p_value": None,
            "bayes": bayes and {k: _round(v) for k, v in bayes.items()},
            "cuped": _cuped(base_rows, rows, goal, metric, settings)}


def _figures(result):
    return {"uplift": _round(result["uplift"]), "ci": [_round(x) for x in result["ci"]],
            "p_value": _round(result["p_value"])}


def _count(rows, goal, metric):
    row = rows.get(goal) or {}
    return (row.get("orders") or 0) if metric == "aov" else row.get("conversions", 0)


def _enough(rows, goal, metric):
    return _visitors(rows) >= MIN_VISITORS and _count(rows, goal, metric) >= MIN_CONVERSIONS


def _estimate(rows, goal, metric):
    visitors, row = _visitors(rows), rows.get(goal) or {}
    if metric == "conversion_rate":
        return stats.rate(row.get("conversions", 0), visitors)
    if metric == "revenue_per_visitor":
        return stats.mean(row.get("revenue", 0.0), row.get("revenue_sq", 0.0), visitors)
    return stats.ratio(row["revenue"], row["revenue_sq"], row["orders"], row["orders_sq"], row["revenue_orders"],
                       visitors)


def _covariates(rows, goal, metric):
    """The arm's CUPED sums for the metric, or None while the counters have no pre-exposure
    covariates (exposures do not carry them yet: docs/DESIGN.md "Results", CUPED)."""
    visitors_row, row = rows.get(None) or {}, rows.get(goal) or {}
    if metric == "aov" or visitors_row.get("pre_sum") is None:
        return None
    k = len(visitors_row["pre_sum"])
    if metric == "conversion_rate":
        y, yy, xy = row.get("conversions", 0), row.get("conversions", 0), row.get("pre_conversions")
    else:
        y, yy, xy = row.get("revenue", 0.0), row.get("revenue_sq", 0.0), row.get("pre_revenue")
    return stats.Covariates(visitors_row["visitors"], y, yy, tuple(visitors_row["pre_sum"]),
                            tuple(map(tuple, visitors_row["pre_products"])), tuple(xy or (0.0,) * k))


def _cuped(base_rows, rows, goal, metric, settings):
    base, arm = _covariates(base_rows, goal, metric), _covariates(rows, goal, metric)
    adjusted = stats.cuped(base, arm) if base and arm else None
    result = adjusted and stats.compare(*adjusted, settings["mode"], settings["alpha"], metric != "conversion_rate")
    return _figures(result) if result else None


def adjust(comparisons):
    """Fill `adjusted_p_value`: Benjamini-Hochberg over each family, the computed comparisons
    against one baseline (every variation x goal x metric shown; a breakdown adds its slices to
    the same family)."""
    families = defaultdict(list)
    for row in comparisons:
        if row["status"] == "ok":
            families[row["vs"]].append(row)
    for family in families.values():
        for row, adjusted in zip(family, stats.benjamini_hochberg([r["p_value"] for r in family])):
            row["adjusted_p_value"] = _round(adjusted)


def _round(x):
    """Six significant digits: enough for any decision, and tiny p-values keep their magnitude.
    None for what is not a finite number (JSON has no inf or NaN)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.6g}")
