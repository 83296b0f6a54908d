"""Plain text of a site's results, for `vitrina results`: one block per campaign and goal, every
figure read from the API's JSON (so the two never disagree)."""

METRIC_NAMES = {"conversion_rate": "conversion rate", "revenue_per_visitor": "revenue per visitor",
                "aov": "average order value"}
MODE_NAMES = {"sequential": "sequential test (valid at every look)",
              "fixed": "fixed-horizon test (valid when read once, at the planned sample size)"}


def _pct(x):
    return f"{x * 100:+.1f}%"


def _p(x):
    return "p<0.001" if x < 0.001 else f"p={x:.3f}"


def _share(x):
    return ">99.9%" if x > 0.999 else "<0.1%" if x < 0.001 else f"{x:.1%}"


def _money(x):
    return "-" if x is None else f"{x:,.2f}"


def _count(n):
    return f"{n:,}"


def render(data):
    version = data["version"] if data["version"] is not None else "(none)"
    lines = [f"Site {data['site']}, version {version}"]
    if data.get("rejected"):
        lines.append("Rejected events: " + ", ".join(f"{k} {v}" for k, v in data["rejected"].items()))
    if data.get("excluded"):
        lines.append("Excluded events (never counted): " + ", ".join(f"{k} {v}" for k, v in data["excluded"].items()))
    if not data["campaigns"]:
        lines.append("No campaigns yet.")
    else:
        lines += ["Each comparison: the relative uplift [its interval] and p-value; the adjusted p corrects for every",
                  "comparison with the same baseline (Benjamini-Hochberg); chance to win and expected loss are Bayesian;",
                  "not enough data: fewer visitors or conversions in an arm than the campaign's minimum."]
    for campaign in data["campaigns"]:
        lines += [""] + _campaign(campaign)
    return "\n".join(lines)


def _campaign(c):
    s = c["stats"]
    lines = [f"{c['key']} ({c['type'] or 'not published'})",
             f"  {MODE_NAMES[s['mode']]}, {1 - s['alpha']:.0%} intervals; "
             f"minimum {s['min_visitors']} visitors and {s['min_conversions']} conversions an arm"]
    srm = c["srm"]
    if srm["status"] == "not_enough_data":
        lines.append("  split check: not enough data")
    elif srm["status"] != "not_applicable":
        verdict = "ok" if srm["ok"] else "SAMPLE RATIO MISMATCH: the split is broken, do not trust these results"
        lines.append(f"  split check: {verdict} ({_p(srm['p_value'])})")
    lines += [f"  ALERT {a['message']}" for a in c.get("alerts", [])]
    arms = [(v["key"], v) for v in c["variations"]] + [("(holdout)", c["holdout"])]
    if not any(arm["visitors"] for _, arm in arms):
        lines.append("  no visitors yet")
        return lines + (_breakdown(c["breakdown"], c) if c.get("breakdown") else [])
    if not c["goals"]:
        lines.append("  visitors: " + ", ".join(f"{name} {_count(arm['visitors'])}" for name, arm in arms))
        lines.append("  no goals listed for this campaign (`vitrina results --all-goals` shows every goal counted)")
    for goal in c["goals"]:
        lines += [""] + _goal(c, goal, arms)
    if c.get("breakdown"):
        lines += [""] + _breakdown(c["breakdown"], c)
    return lines


def _breakdown(breakdown, c):
    """Slices x arms on the first goal's conversion rate: each arm's rate, its uplift against the
    baseline (* when significant after adjustment), the slice's winner; then the best-per-slice
    summary."""
    dimension, slices = breakdown["dimension"], breakdown["slices"]
    goal = c["goals"][0] if c["goals"] else None
    if goal is None or not slices:
        return [f"  by {dimension}: " + ("no goal to compare on" if goal is None else "no slices yet")]
    note = "; a visitor counts in every segment they matched" if breakdown["overlapping"] else ""
    vs = "control" if any(v["key"] == "control" for v in c["variations"]) else "holdout"
    holdout = any(s["holdout"]["visitors"] for s in slices)  # a column only when the site holds visitors out
    names = [v["key"] for v in c["variations"]] + (["(holdout)"] if holdout else [])
    lines = [f"  by {dimension} ({goal}, conversion rate; uplift against {vs}, * significant{note}):",
             f"    {'slice':<22}{'visitors':>10}" + "".join(f"{name[:18]:>20}" for name in names) + "  winner"]
    for s in slices:
        cells = [_slice_cell(s, arm, key, goal, vs, c["stats"]["alpha"])
                 for arm, key in [(v, v["key"]) for v in s["variations"]] + ([(s["holdout"], None)] if holdout else [])]
        winner = s["winner"]
        lines.append(f"    {s['value'][:21]:<22}{_count(s['visitors']):>10}" + "".join(f"{cell:>20}" for cell in cells)
                     + "  " + ("-" if winner is None else winner["variation"] or "(holdout)"))
    summary = breakdown["summary"]
    if summary:
        overall = summary["overall"]
        lines.append(f"  best per {dimension} vs best overall ({goal} conversion rate against {summary['vs']}): "
                     f"per {dimension} {_pct(summary['per_slice']['uplift'])}, best overall "
                     f"({overall['variation'] or '(holdout)'}) {_pct(overall['uplift'])}; choosing per {dimension} "
                     f"changes conversions by {_pct(summary['gain'])} ({summary['slices_with_winner']} of "
                     f"{summary['slices']} slices have a winner)")
    return lines


def _slice_cell(s, arm, key, goal, vs, alpha):
    """`rate` or `rate uplift[*]` of one arm (key None: the holdout) in one slice."""
    if not arm["visitors"]:
        return "-"
    text = f"{arm['goals'][goal]['rate'] * 100:.2f}%"
    row = next((x for x in s["comparisons"] if (x["variation"], x["goal"], x["metric"], x["vs"]) ==
                (key, goal, "conversion_rate", vs)), None)
    if row and row["status"] == "ok":
        text += f" {_pct(row['uplift'])}{'*' if row['adjusted_p_value'] < alpha else ''}"
    return text


def _goal(c, goal, arms):
    # against control first, then against the holdout
    comparisons = sorted((x for x in c["comparisons"] if x["goal"] == goal), key=lambda x: x["vs"] != "control")
    revenue = any(x["metric"] != "conversion_rate" for x in comparisons)
    orders = any(arm["goals"][goal].get("orders") for _, arm in arms)
    header = f"    {'arm':<18}{'visitors':>10}{'conversions':>13}{'rate':>9}"
    if revenue:
        header += f"{'revenue':>13}{'per visitor':>13}"
    if orders:
        header += f"{'orders':>9}{'per order':>11}"
    lines = [f"  {goal}", header]
    for name, arm in arms:
        stats = arm["goals"][goal]
        line = f"    {name:<18}{_count(arm['visitors']):>10}{_count(stats['conversions']):>13}{stats['rate'] * 100:>8.2f}%"
        if revenue:
            line += f"{_money(stats['revenue']):>13}{_money(stats['revenue_per_visitor']):>13}"
        if orders:
            line += f"{_count(stats['orders'] or 0):>9}{_money(stats['aov']):>11}"
        lines.append(line)
    for metric in METRIC_NAMES:
        rows = [x for x in comparisons if x["metric"] == metric]
        if rows:
            lines.append(f"    {METRIC_NAMES[metric]}:")
            for x in rows:
                first, *more = _comparison(x, c["stats"]["alpha"])
                lines.append(f"      {x['variation'] + ' vs ' + x['vs']:<24}{first}")
                lines += [f"      {'':<24}{text}" for text in more]
    return lines


def _interval(x):
    low, high = x["ci"]
    return f"{_pct(x['uplift'])} [{_pct(low)}, {_pct(high)}]"


def _comparison(x, alpha):
    """The comparison's lines: the uplift, its interval and p-values; the Bayesian summary; CUPED."""
    if x["status"] != "ok":
        return ["not enough data"]
    verdict = ": significant" if x["adjusted_p_value"] < alpha else ""
    lines = [f"{_interval(x)}  {_p(x['p_value'])}, adjusted {_p(x['adjusted_p_value'])}{verdict}"]
    if x["bayes"]:
        lines.append(f"chance to win {_share(x['bayes']['chance_to_win'])}, expected loss {x['bayes']['expected_loss']:.2%}")
    if x["cuped"]:
        lines.append(f"with CUPED: {_interval(x['cuped'])}  {_p(x['cuped']['p_value'])}")
    return lines
