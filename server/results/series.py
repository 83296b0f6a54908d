"""What the workspace draws and exports from a campaign's results: each arm's conversion rate
with its 95% interval (Wilson score), the daily series (visitors and conversions per day, days
without events filled with zeros), and the CSV rows, which hold exactly the numbers of
GET .../results."""
import math
from datetime import date, timedelta
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # the standard library's normal: scipy stays unloaded until results need it

HOLDOUT = "(holdout)"
COMPARED = ("status", "uplift", "ci_low", "ci_high", "p_value", "adjusted_p_value", "chance_to_win")
CSV_COLUMNS = ["campaign", "variation", "goal", "visitors", "conversions", "rate", "revenue", "revenue_per_visitor",
               "method"] + [f"{name}_vs_{baseline}" for baseline in ("control", "holdout") for name in COMPARED]
MAX_DAYS = 366


def rate_interval(conversions, visitors):
    """The Wilson score interval of conversions/visitors at 95% ([low, high]); None without visitors."""
    if visitors <= 0:
        return None
    p, z2 = conversions / visitors, Z95 * Z95
    centre = (p + z2 / (2 * visitors)) / (1 + z2 / visitors)
    half = Z95 * math.sqrt(p * (1 - p) / visitors + z2 / (4 * visitors * visitors)) / (1 + z2 / visitors)
    return [round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6)]


def arms(campaign):
    """[(name, arm)] of a results campaign: its variations, then the holdout when it has visitors."""
    out = [(v["key"], v) for v in campaign["variations"]]
    if campaign["holdout"]["visitors"]:
        out.append((HOLDOUT, campaign["holdout"]))
    return out


def goals_of(campaign):
    return campaign.get("goals") or list(dict.fromkeys(g for _, arm in arms(campaign) for g in arm["goals"]))


def rate_chart(campaign, goal):
    """[{variation, rate, low, high, visitors, conversions}] of one goal."""
    rows = []
    for name, arm in arms(campaign):
        stats = arm["goals"].get(goal, {"conversions": 0, "rate": 0.0})
        interval = rate_interval(stats["conversions"], arm["visitors"]) or [0.0, 0.0]
        rows.append({"variation": name, "rate": stats["rate"], "low": interval[0], "high": interval[1],
                     "visitors": arm["visitors"], "conversions": stats["conversions"]})
    return rows


def daily_series(rows, goal):
    """[{day, variation, visitors, conversions}] from the store's daily counters, one row per day
    from the first to the last and per arm, conversions of `goal`."""
    if not rows:
        return []
    days = sorted({r["day"] for r in rows})
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    names = sorted({r["variation"] or HOLDOUT for r in rows}, key=lambda n: (n == HOLDOUT, n))
    table = {}
    for r in rows:
        name = r["variation"] or HOLDOUT
        cell = table.setdefault((r["day"], name), {"visitors": 0, "conversions": 0})
        if r["goal"] is None:
            cell["visitors"] += r["visitors"]
        elif r["goal"] == goal:
            cell["conversions"] += r["conversions"]
    out = []
    for n in range((last - first).days + 1):
        day = (first + timedelta(days=n)).isoformat()
        for name in names:
            cell = table.get((day, name), {"visitors": 0, "conversions": 0})
            out.append({"day": day, "variation": name, **cell})
    return out


def money(campaign, goal):
    """[{variation, revenue, aov, rpv}] where the goal carries value; [] when it never did."""
    rows = []
    for name, arm in arms(campaign):
        stats = arm["goals"].get(goal, {"conversions": 0, "revenue": 0.0})
        revenue = stats.get("revenue", 0.0)
        rows.append({"variation": name, "revenue": revenue,
                     "aov": round(revenue / stats["conversions"], 2) if stats["conversions"] else None,
                     "rpv": round(revenue / arm["visitors"], 4) if arm["visitors"] else None})
    return rows if any(r["revenue"] for r in rows) else []


def rate_comparisons(campaign):
    """{(variation, vs, goal): comparison} of the conversion rate (not revenue or AOV)."""
    return {(c["variation"], c["vs"], c["goal"]): c for c in campaign["comparisons"]
            if c.get("metric", "conversion_rate") == "conversion_rate"}


def csv_rows(campaign):
    """One row per arm and goal, in CSV_COLUMNS order, values as GET .../results gives them
    (comparisons: of the conversion rate)."""
    compared = rate_comparisons(campaign)
    method = (campaign.get("stats") or {}).get("mode")
    rows = []
    for name, arm in arms(campaign):
        for goal in goals_of(campaign):
            stats = arm["goals"].get(goal, {"conversions": 0, "rate": 0.0, "revenue": 0.0})
            row = [campaign["key"], name, goal, arm["visitors"], stats["conversions"], stats["rate"], stats["revenue"],
                   stats.get("revenue_per_visitor"), method]
            for baseline in ("control", "holdout"):
                c = compared.get((name, baseline, goal)) or {}
                ci = c.get("ci") or [None, None]
                row += [c.get("status"), c.get("uplift"), ci[0], ci[1], c.get("p_value"), c.get("adjusted_p_value"),
                        (c.get("bayes") or {}).get("chance_to_win")]
            rows.append(["" if value is None else value for value in row])
    return rows


def slice_table(campaign):
    """The breakdown of a results campaign (`?breakdown=`) as the workspace's table draws it, on
    the first goal's conversion rate: [{value, visitors, cells: [{name, rate, uplift,
    significant, winner}], winner}] (rate None for an arm without visitors in the slice), plus
    the arm names in column order. None without a breakdown or a goal."""
    breakdown, goals = campaign.get("breakdown"), campaign.get("goals") or []
    if not breakdown or not goals:
        return None
    goal, alpha = goals[0], campaign["stats"]["alpha"]
    with_holdout = any(s["holdout"]["visitors"] for s in breakdown["slices"])
    names = [v["key"] for v in campaign["variations"]] + ([HOLDOUT] if with_holdout else [])
    rows = []
    for s in breakdown["slices"]:
        winner = s["winner"]
        chosen = (winner["variation"] or HOLDOUT) if winner else None
        cells = []
        vs = winner["vs"] if winner else ("control" if "control" in names else "holdout")
        for name in names:
            arm = s["holdout"] if name == HOLDOUT else next((v for v in s["variations"] if v["key"] == name),
                                                            {"visitors": 0})
            compared = next((c for c in s["comparisons"] if c["variation"] == (None if name == HOLDOUT else name)
                             and c["goal"] == goal and c["metric"] == "conversion_rate" and c["vs"] == vs), None)
            ok = compared is not None and compared["status"] == "ok"
            cells.append({"name": name, "rate": arm["goals"][goal]["rate"] if arm["visitors"] else None,
                          "uplift": compared["uplift"] if ok else None,
                          "significant": ok and compared["adjusted_p_value"] < alpha, "winner": name == chosen})
        rows.append({"value": s["value"], "visitors": s["visitors"], "cells": cells, "winner": chosen})
    return {"goal": goal, "names": names, "rows": rows, "dimension": breakdown["dimension"],
            "overlapping": breakdown["overlapping"], "summary": breakdown["summary"]}
