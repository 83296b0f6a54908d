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


def _count(n):
    return f"{n:,}"


def render(data):
    version = data["version"] if data["version"] is not None else "(none)"
    lines = [f"Site {data['site']}, version {version}"]
    if data.get("rejected"):
        lines.append("Rejected events: " + ", ".join(f"{k} {v}" for k, v in data["rejected"].items()))
    if not data["campaigns"]:
        lines.append("No campaigns yet.")
    for campaign in data["campaigns"]:
        lines += [""] + _campaign(campaign)
    return "\n".join(lines)


def _campaign(c):
    s = c["stats"]
    lines = [f"{c['key']} ({c['type'] or 'not published'})",
             f"  {MODE_NAMES[s['mode']]}, {1 - s['alpha']:.0%} intervals; adjusted p: Benjamini-Hochberg over the "
             f"comparisons with one baseline; not enough data: under {s['min_visitors']} visitors or "
             f"{s['min_conversions']} conversions in an arm"]
    srm = c["srm"]
    if srm["status"] == "not_enough_data":
        lines.append("  split check: not enough data")
    elif srm["status"] != "not_applicable":
        verdict = "ok" if srm["ok"] else "SAMPLE RATIO MISMATCH: the split is broken, do not trust these results"
        lines.append(f"  split check: {verdict} ({_p(srm['p_value'])})")
    arms = [(v["key"], v) for v in c["variations"]] + [("(holdout)", c["holdout"])]
    if not c["goals"]:
        lines.append("  visitors: " + ", ".join(f"{name} {_count(arm['visitors'])}" for name, arm in arms))
        lines.append("  no goals listed for this campaign (`vitrina results --all-goals` shows every goal counted)")
    for goal in c["goals"]:
        lines += [""] + _goal(c, goal, arms)
    return lines


def _goal(c, goal, arms):
    comparisons = [x for x in c["comparisons"] if x["goal"] == goal]
    revenue = any(x["metric"] != "conversion_rate" for x in comparisons)
    header = f"    {'arm':<18}{'visitors':>10}{'conversions':>13}{'rate':>9}"
    if revenue:
        header += f"{'revenue':>13}{'per visitor':>13}"
    lines = [f"  {goal}", header]
    for name, arm in arms:
        stats = arm["goals"][goal]
        line = f"    {name:<18}{_count(arm['visitors']):>10}{_count(stats['conversions']):>13}{stats['rate'] * 100:>8.2f}%"
        if revenue:
            line += f"{stats['revenue']:>13,.2f}{stats['revenue_per_visitor']:>13,.2f}"
        lines.append(line)
    for metric in METRIC_NAMES:
        rows = [x for x in comparisons if x["metric"] == metric]
        if rows:
            lines.append(f"    {METRIC_NAMES[metric]}:")
            lines += [f"      {x['variation'] + ' vs ' + x['vs']:<24}{_comparison(x, c['stats']['alpha'])}" for x in rows]
    return lines


def _comparison(x, alpha):
    if x["status"] != "ok":
        return "not enough data"
    low, high = x["ci"]
    text = f"{_pct(x['uplift'])} [{_pct(low)}, {_pct(high)}]  {_p(x['p_value'])}  adjusted {_p(x['adjusted_p_value'])}"
    if x["adjusted_p_value"] < alpha:
        text += "  significant"
    if x["bayes"]:
        text += (f"  chance to win {x['bayes']['chance_to_win']:.1%}, "
                 f"expected loss {x['bayes']['expected_loss']:.2%}")
    if x["cuped"]:
        cuped = x["cuped"]
        text += f"  (CUPED: {_pct(cuped['uplift'])} [{_pct(cuped['ci'][0])}, {_pct(cuped['ci'][1])}] {_p(cuped['p_value'])})"
    return text
