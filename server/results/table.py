"""Plain-text table of a site's results, for `vitrina results`."""


def _pct(x):
    return "-" if x is None else f"{x * 100:+.1f}%"


def _p(x):
    return "-" if x is None else f"{x:.3f}"


def _effect(stats):
    ci = stats["ci"]
    ci_text = f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else ""
    return f"{_pct(stats['uplift'])}{ci_text} p={_p(stats['p_value'])}"


def render(data):
    lines = [f"Site {data['site']}, version {data['version'] if data['version'] is not None else '(none)'}"
             "   (uplift with 95% confidence interval and p-value)"]
    if data.get("rejected"):
        lines.append("Rejected events: " + ", ".join(f"{k} {v}" for k, v in data["rejected"].items()))
    if not data["campaigns"]:
        lines.append("No campaigns yet.")
    for c in data["campaigns"]:
        lines.append("")
        srm = c["srm"]
        flag = "ok" if srm["ok"] else "SAMPLE RATIO MISMATCH"
        lines.append(f"{c['key']} ({c['type'] or 'not live'})  split check: {flag} (p={_p(srm['p_value'])})")
        goals = sorted({g for v in c["variations"] for g in v["goals"]})
        header = f"  {'variation':<16}{'visitors':>10}" + "".join(f"{g[:14] + ' conv':>20}{'rate':>9}{'revenue':>11}" for g in goals)
        lines.append(header)
        rows = [(v["key"], v) for v in c["variations"]] + [("(holdout)", c["holdout"])]
        for name, arm in rows:
            line = f"  {name:<16}{arm['visitors']:>10}"
            for g in goals:
                stats = arm["goals"].get(g, {"conversions": 0, "rate": 0, "revenue": 0})
                line += f"{stats['conversions']:>20}{stats['rate'] * 100:>8.2f}%{stats['revenue']:>11.2f}"
            lines.append(line)
        for comp in c["comparisons"]:
            if comp["uplift"] is None and comp["p_value"] is None:
                continue  # nothing to compare yet
            line = f"  {comp['variation']} vs {comp['vs']} on {comp['goal']}: conversion {_effect(comp)}"
            if comp.get("revenue_per_visitor"):
                line += f"; revenue/visitor {_effect(comp['revenue_per_visitor'])}"
            lines.append(line)
    return "\n".join(lines)
