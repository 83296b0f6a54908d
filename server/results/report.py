"""Results per campaign: each arm's counters from the store, compared by server/results/stats.py
(docs/DESIGN.md "Results" describes every field)."""
import math
from collections import defaultdict

import numpy as np

from server.allocation.report import allocation_result
from server.configs import publishing
from server.results import stats
from server.store import get_store
from server.store.base import read_label

DEFAULT_STATS = {"mode": "sequential", "alpha": 0.05}
MIN_VISITORS = 100  # per arm: below, a comparison says "not_enough_data" instead of a number
MIN_CONVERSIONS = 5  # per arm and goal (orders, for aov): the normal approximation's usual floor
SRM_MIN_EXPECTED = 5  # visitors expected in every arm before the chi-square check means anything


def site_results(site, all_goals=False, channel=None, breakdown=None):
    """Every campaign of the latest version, then campaigns no longer published that still have
    counters. Only a campaign's own goals (and guardrails) unless all_goals (a campaign no longer
    published shows every goal it has counters for: its list is gone). With a channel ("web",
    "email"), only the units whose first exposure came through it (and their conversions). With
    `breakdown` (one of SLICE_DIMENSIONS), each campaign also gets its results per slice of that
    dimension: slices are the browser's (what collect sees), so web units only."""
    latest = publishing.load_latest(site)
    bundle = latest[0] if latest else {"version": None, "campaigns": [], "settings": {}}
    store = get_store()
    counters = _by_campaign(store.counters(site, channel))
    configured = {c["key"]: c for c in bundle["campaigns"]}
    keys = list(configured) + sorted(set(counters) - set(configured))
    site_stats = bundle.get("settings", {}).get("stats")
    slices = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))  # campaign -> value -> arms
    if breakdown is not None and channel != "email":
        for row in store.slice_counters(site, breakdown):
            slices[row["campaign"]][row["value"]][row["variation"]][row["goal"]] = row
    campaigns = [campaign_result(key, configured.get(key), counters.get(key, {}), site_stats, all_goals,
                                 None if breakdown is None else (breakdown, slices.get(key, {})))
                 for key in keys]
    adaptive = [c for c in bundle["campaigns"] if c.get("allocation")]
    if adaptive:
        # counters per adaptive allocation slice and revision (not the breakdown's slices above)
        rows = store.labelled_counters(site)
        revisions = {read_label(r["channel"])[1] for r in rows} - {None}
        documents = {n: publishing.load_revision(site, n) for n in revisions}
        for result, campaign in ((r, configured[r["key"]]) for r in campaigns if r["key"] in configured):
            if campaign.get("allocation"):
                # weights move on purpose: the split is checked per revision, against what each served
                result["srm"] = {"status": "not_applicable", "p_value": None, "ok": None}
                result["alerts"] = [a for a in result["alerts"] if a["kind"] != "srm"]
                result["allocation"] = allocation_result(campaign, rows, bundle.get("revision"), documents)
    return {"site": site, "version": bundle["version"], **({"channel": channel} if channel else {}),
            "campaigns": campaigns,
            # events refused by collect, by reason: forged or broken traffic is visible, never counted
            "rejected": store.rejections(site),
            # valid events not counted, by reason: bots, excluded addresses, internal and forced views
            "excluded": store.exclusions(site)}


def _by_campaign(rows):
    """campaign -> variation (None: holdout) -> goal (None: visitors) -> counter row."""
    counters = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        counters[row["campaign"]][row["variation"]][row["goal"]] = row
    return counters


def stats_settings(site_stats, campaign):
    """The campaign's test settings: its own `stats`, over the site's `settings.stats`, over the defaults."""
    return {**DEFAULT_STATS, **(site_stats or {}), **((campaign or {}).get("stats") or {})}


def campaign_result(key, campaign, arms, site_stats=None, all_goals=False, breakdown=None):
    """One campaign's results; `breakdown` is (dimension, {slice value: arms}) or None."""
    settings = stats_settings(site_stats, campaign)
    goals = _goals(campaign, arms, all_goals)
    result = slice_result(campaign, arms, goals, settings)
    adjust(result["comparisons"])
    out = {"key": key, "type": campaign["type"] if campaign else None,
           "stats": {**settings, "min_visitors": MIN_VISITORS, "min_conversions": MIN_CONVERSIONS},
           "goals": goals, "guardrails": list(campaign.get("guardrails", [])) if campaign else [], **result}
    out["alerts"] = alerts(out, arms, settings)
    if breakdown is not None:
        out["breakdown"] = _breakdown(campaign, breakdown, goals, settings, out)
    return out


def _goals(campaign, arms, all_goals):
    listed = list(campaign["goals"]) if campaign else []
    listed += [g for g in (campaign or {}).get("guardrails", []) if g not in listed]
    counted = sorted({g for rows in arms.values() for g in rows if g is not None and g not in listed})
    return listed + counted if all_goals or campaign is None else listed


def slice_result(campaign, arms, goals, settings, pending=None):
    """{variations, holdout, srm, comparisons} of one campaign over one slice of its visitors,
    from that slice's counters `arms` ({variation key or None: {goal or None: counter row}}).
    Comparisons are not adjusted for multiplicity here: `adjust` does, over the whole family.
    With a `pending` list, the comparisons' figures are left for `evaluate(pending)` to compute
    with every other slice's at once (numpy over all of them: a breakdown costs a few calls
    into scipy, not a few per comparison)."""
    configured = [v["key"] for v in campaign["variations"]] if campaign else []
    keys = configured + sorted(k for k in arms if k is not None and k not in configured)
    rows = {k: arms.get(k, {}) for k in keys + [None]}
    variations = [{"key": k, **_arm(rows[k], goals)} for k in keys]
    weights = {v["key"]: v["weight"] for v in campaign["variations"]} if campaign else {}
    work = Pending() if pending is None else pending
    result = {"variations": variations, "holdout": _arm(rows[None], goals),
              "srm": _srm([v["visitors"] for v in variations if v["key"] in weights],
                          [weights[v["key"]] for v in variations if v["key"] in weights], work),
              "comparisons": _comparisons(keys, rows, goals, settings, work.comparisons)}
    if pending is None:
        evaluate(work)
    return result


class Pending:
    """What `evaluate` computes at once: comparisons (row, baseline rows, variation rows, goal,
    metric, settings) and split checks (srm dict, visitors, weights) of any number of slices."""

    def __init__(self):
        self.comparisons, self.srms = [], []


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


def _srm(observed, weights, pending):
    if len(observed) < 2:
        return {"status": "not_applicable", "p_value": None, "ok": None}
    total, weight = sum(observed), sum(weights)
    if min(total * w / weight for w in weights if w > 0) < SRM_MIN_EXPECTED or total < MIN_VISITORS:
        return {"status": "not_enough_data", "p_value": None, "ok": None}
    srm = {"status": "not_applicable", "p_value": None, "ok": None}
    pending.srms.append((srm, observed, weights))
    return srm


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


def _comparisons(keys, rows, goals, settings, jobs):
    """Each variation against `control` (a variation of that key) and against the holdout, per
    goal and metric; each row's figures to be filled by `evaluate(jobs)`."""
    metrics = {g: _metrics(g, rows) for g in goals}
    out = []
    for key in keys:
        for vs, baseline in (("control", "control"), ("holdout", None)):
            if baseline == key or (baseline is not None and baseline not in keys):
                continue
            for goal in goals:
                for metric in metrics[goal]:
                    row = {"variation": key, "vs": vs, "goal": goal, "metric": metric, **_empty(settings)}
                    out.append(row)
                    if _enough(rows[baseline], goal, metric) and _enough(rows[key], goal, metric):
                        jobs.append((row, rows[baseline], rows[key], goal, metric, settings))
    return out


def _empty(settings):
    return {"method": settings["mode"], "status": "not_enough_data", "uplift": None, "ci": None, "p_value": None,
            "adjusted_p_value": None, "bayes": None, "cuped": None}


def compare_arms(base_rows, rows, goal, metric, settings):
    """One comparison's figures, from the counters of the baseline arm and of the variation."""
    row, work = _empty(settings), Pending()
    if _enough(base_rows, goal, metric) and _enough(rows, goal, metric):
        work.comparisons.append((row, base_rows, rows, goal, metric, settings))
        evaluate(work)
    return row


def evaluate(pending):
    """Fill the figures of every pending comparison: grouped by mode, alpha and metric, each
    group's comparisons, Bayesian summaries and CUPED adjustments computed at once, on arrays;
    and the split checks, one chi-square call per set of weights."""
    by_weights = defaultdict(list)
    for srm, observed, weights in pending.srms:
        by_weights[tuple(weights)].append((srm, observed))
    for weights, checks in by_weights.items():
        for (srm, _), checked in zip(checks, stats.srm_check_many([o for _, o in checks], weights)):
            if checked is not None:
                p_value, ok = checked
                srm.update(status="ok" if ok else "mismatch", p_value=_round(p_value), ok=ok)
    groups = defaultdict(list)
    for job in pending.comparisons:
        groups[(job[5]["mode"], job[5]["alpha"], job[4])].append(job)
    for (mode, alpha, metric), group in groups.items():
        base = _estimates([job[1] for job in group], [job[3] for job in group], metric)
        arm = _estimates([job[2] for job in group], [job[3] for job in group], metric)
        figures = stats.compare_many(base, arm, mode, alpha, metric != "conversion_rate")
        if metric == "conversion_rate":
            base_k, arm_k = (np.array([_count(job[side], job[3], metric) for job in group], float) for side in (1, 2))
            bayes = stats.bayes_rates_many(base_k, np.asarray(base.n, float), arm_k, np.asarray(arm.n, float))
        else:
            bayes = stats.bayes_normal_many(base, arm)
        cuped = _cuped_many(group, mode, alpha, metric)
        for i, (row, *_) in enumerate(group):
            uplift, low, high, p_value = (float(x[i]) for x in figures)
            if math.isnan(p_value):
                continue
            chance, loss = float(bayes[0][i]), float(bayes[1][i])
            row.update(status="ok", uplift=_round(uplift), ci=[_round(low), _round(high)], p_value=_round(p_value),
                       bayes=None if math.isnan(chance) else {"chance_to_win": _round(chance),
                                                              "expected_loss": _round(loss)},
                       cuped=cuped.get(i))


def _estimates(arms, goals, metric):
    """The metric's Estimate over several arms at once (arrays), from their counter rows."""
    visitors = np.array([_visitors(rows) for rows in arms], float)
    goal_rows = [rows.get(goal) or {} for rows, goal in zip(arms, goals)]

    def column(name, default=0.0):
        return np.array([row.get(name) or default for row in goal_rows], float)
    with np.errstate(all="ignore"):  # sums too large to square: no figure (compare_many), not an error
        if metric == "conversion_rate":
            return stats.rate(column("conversions"), visitors)
        if metric == "revenue_per_visitor":
            return stats.mean(column("revenue"), column("revenue_sq"), visitors)
        return stats.ratio(column("revenue"), column("revenue_sq"), column("orders"), column("orders_sq"),
                           column("revenue_orders"), visitors)


def _cuped_many(group, mode, alpha, metric):
    """{index in group: CUPED figures} of the comparisons whose two arms carry covariates."""
    pairs = [(i, _covariates(job[1], job[3], metric), _covariates(job[2], job[3], metric))
             for i, job in enumerate(group)]
    pairs = [(i, a, b) for i, a, b in pairs if a and b and len(a.sum_x) == len(b.sum_x)]
    found = {}
    for k in {len(a.sum_x) for _, a, _ in pairs}:  # one stack per number of covariates (always 2 from the stores)
        same = [(i, a, b) for i, a, b in pairs if len(a.sum_x) == k]
        stacked = [stats.Covariates(*(np.array([getattr(c, f) for c in arms], float) for f in COVARIATE_FIELDS))
                   for arms in ([a for _, a, _ in same], [b for _, _, b in same])]
        adjusted_a, adjusted_b, ok = stats.cuped_many(*stacked)
        uplift, low, high, p_value = stats.compare_many(adjusted_a, adjusted_b, mode, alpha, metric != "conversion_rate")
        for j, (i, _, _) in enumerate(same):
            if ok[j] and not math.isnan(p_value[j]):
                found[i] = {"uplift": _round(float(uplift[j])), "ci": [_round(float(low[j])), _round(float(high[j]))],
                            "p_value": _round(float(p_value[j]))}
    return found


COVARIATE_FIELDS = ("n", "sum_y", "sum_yy", "sum_x", "sum_xx", "sum_xy")


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
    """The arm's CUPED sums for the metric, or None unless every visitor of the arm carried the
    pre-exposure covariates (an older SDK's exposures do not: docs/DESIGN.md "Results", CUPED)."""
    visitors_row, row = rows.get(None) or {}, rows.get(goal) or {}
    if metric == "aov" or visitors_row.get("pre_sum") is None \
            or visitors_row.get("pre_visitors", visitors_row["visitors"]) != visitors_row["visitors"]:
        return None
    k = len(visitors_row["pre_sum"])
    if metric == "conversion_rate":
        y, yy, xy = row.get("conversions", 0), row.get("conversions", 0), row.get("pre_conversions")
    else:
        y, yy, xy = row.get("revenue", 0.0), row.get("revenue_sq", 0.0), row.get("pre_revenue")
    return stats.Covariates(visitors_row["visitors"], y, yy, tuple(visitors_row["pre_sum"]),
                            tuple(map(tuple, visitors_row["pre_products"])), tuple(xy or (0.0,) * k))


def adjust(comparisons):
    """Fill `adjusted_p_value`: Benjamini-Hochberg over each family, the computed comparisons
    against one baseline (every variation x goal x metric shown; for a breakdown, every slice's
    comparisons together: a family of their own, so the campaign's overall figures do not change
    when slices are asked for)."""
    families = defaultdict(list)
    for row in comparisons:
        if row["status"] == "ok":
            families[row["vs"]].append(row)
    for family in families.values():
        for row, adjusted in zip(family, stats.benjamini_hochberg([r["p_value"] for r in family])):
            row["adjusted_p_value"] = _round(adjusted)


GUARDRAIL_METRICS = ("conversion_rate", "revenue_per_visitor")


def _baseline(result):
    """("control", "control") when the campaign has a control variation, else ("holdout", None)."""
    return ("control", "control") if any(v["key"] == "control" for v in result["variations"]) else ("holdout", None)


def alerts(result, arms, settings):
    """[{kind, message, ...}]: `srm` when the split check says mismatch; `guardrail` for each
    variation whose guardrail goal got significantly worse than the baseline's: a one-sided test
    in the campaign's mode (stats.worse), Holm-adjusted over every variation x guardrail x metric
    (the claim "no guardrail got worse" is about the whole family at once)."""
    found = []
    if result["srm"]["status"] == "mismatch":
        found.append({"kind": "srm", "p_value": result["srm"]["p_value"],
                      "message": f"sample ratio mismatch (p={result['srm']['p_value']:.2g}): the visitors are not "
                                 "split as the weights say; do not trust these results until the cause is found"})
    vs, baseline = _baseline(result)
    tests = []
    for variation in (v["key"] for v in result["variations"]):
        if variation == baseline:
            continue
        for goal in result["guardrails"]:
            for metric in GUARDRAIL_METRICS:
                if metric not in _metrics(goal, {k: arms.get(k, {}) for k in (variation, baseline)}):
                    continue
                base_rows, rows = arms.get(baseline, {}), arms.get(variation, {})
                if not (_enough(base_rows, goal, metric) and _enough(rows, goal, metric)):
                    continue
                base, arm = _estimate(base_rows, goal, metric), _estimate(rows, goal, metric)
                p_value = stats.worse(base, arm, settings["mode"], settings["alpha"], metric != "conversion_rate")
                if p_value is not None:
                    tests.append((variation, goal, metric, arm.mean / base.mean - 1, p_value))
    for (variation, goal, metric, uplift, _), adjusted in zip(tests, stats.holm([t[-1] for t in tests])):
        if adjusted < settings["alpha"]:
            found.append({"kind": "guardrail", "goal": goal, "variation": variation, "vs": vs, "metric": metric,
                          "uplift": _round(uplift), "p_value": _round(adjusted),
                          "message": f"guardrail {goal}: {variation} is worse than {vs} on "
                                     f"{metric.replace('_', ' ')} ({uplift:+.1%}, one-sided p={adjusted:.2g}, "
                                     f"{settings['mode']}, Holm-adjusted)"})
    return found


def _breakdown(campaign, breakdown, goals, settings, overall):
    """{dimension, overlapping, slices, summary}: the campaign's results per slice, each slice in
    the shape of the overall results, with its `winner`; then the best-per-slice summary."""
    dimension, slice_arms = breakdown
    slices, pending = [], Pending()
    for value, arms in slice_arms.items():
        result = slice_result(campaign, arms, goals, settings, pending)
        visitors = sum(v["visitors"] for v in result["variations"]) + result["holdout"]["visitors"]
        slices.append({"value": value, "visitors": visitors, **result})
    evaluate(pending)
    slices.sort(key=lambda s: (-s["visitors"], s["value"]))
    adjust([c for s in slices for c in s["comparisons"]])
    goal = goals[0] if goals else None
    for s in slices:
        s["winner"] = _winner(s, goal, settings["alpha"])
    overlapping = dimension == "segment"  # a visitor counts in every segment they matched
    return {"dimension": dimension, "overlapping": overlapping, "slices": slices,
            "summary": _summary(slices, overall, goal, settings["alpha"], overlapping)}


def _winner(result, goal, alpha):
    """The slice's winner on the goal's conversion rate, or None: the variation with the highest
    uplift among those significantly better than the baseline (control, else the holdout); the
    baseline itself when every variation is significantly worse (`variation` null: the holdout,
    no campaign). Significant: adjusted p-value below alpha."""
    if goal is None:
        return None
    vs, baseline = _baseline(result)
    rows = [c for c in result["comparisons"] if c["goal"] == goal and c["metric"] == "conversion_rate" and c["vs"] == vs]
    significant = [c for c in rows if c["status"] == "ok" and c["adjusted_p_value"] < alpha]
    better = [c for c in significant if c["uplift"] > 0]
    if better:
        best = max(better, key=lambda c: c["uplift"])
        return {"variation": best["variation"], "vs": vs, "goal": goal, "uplift": best["uplift"],
                "adjusted_p_value": best["adjusted_p_value"]}
    if rows and len(significant) == len(rows) and all(c["uplift"] < 0 for c in rows):
        return {"variation": baseline, "vs": vs, "goal": goal, "uplift": 0.0, "adjusted_p_value": None}
    return None


def _summary(slices, overall, goal, alpha, overlapping):
    """Best per slice against best overall, on the goal's conversion rate: each slice gets its
    winner (or, without one, the choice for everyone: the overall winner, else the baseline), and
    the rates those choices give in each slice are averaged, weighted by the slice's visitors,
    against the overall choice's and the baseline's in the same slices. None without a goal or data."""
    if goal is None:
        return None
    vs, baseline = _baseline(overall)
    overall_winner = _winner(overall, goal, alpha)
    everyone = overall_winner["variation"] if overall_winner else baseline
    totals = {"weight": 0, "baseline": 0.0, "everyone": 0.0, "per_slice": 0.0}
    used = with_winner = 0
    for s in slices:
        choice = s["winner"]["variation"] if s["winner"] else everyone
        rates = [_slice_rate(s, key, goal) for key in (baseline, everyone, choice)]
        if None in rates or not s["visitors"]:
            continue
        used += 1
        with_winner += s["winner"] is not None
        for name, rate in zip(("baseline", "everyone", "per_slice"), rates):
            totals[name] += s["visitors"] * rate
        totals["weight"] += s["visitors"]
    if not totals["weight"] or not totals["baseline"] or not totals["everyone"]:
        return None
    base, best, per_slice = (totals[k] / totals["weight"] for k in ("baseline", "everyone", "per_slice"))
    return {"goal": goal, "metric": "conversion_rate", "vs": vs, "baseline_rate": _round(base),
            "overall": {"variation": everyone, "rate": _round(best), "uplift": _round(best / base - 1)},
            "per_slice": {"rate": _round(per_slice), "uplift": _round(per_slice / base - 1)},
            "gain": _round(per_slice / best - 1), "slices": used, "slices_with_winner": with_winner,
            "overlapping": overlapping}


def _slice_rate(result, key, goal):
    """The conversion rate of arm `key` (None: the holdout) in a slice's result, None without visitors."""
    arm = result["holdout"] if key is None else next((v for v in result["variations"] if v["key"] == key), None)
    if not arm or not arm["visitors"]:
        return None
    return arm["goals"][goal]["conversions"] / arm["visitors"]


def _round(x):
    """Six significant digits: enough for any decision, and tiny p-values keep their magnitude.
    None for what is not a finite number (JSON has no inf or NaN)."""
    return None if x is None or not math.isfinite(x) else float(f"{x:.6g}")
