"""What results show of an adaptive campaign (docs/DESIGN.md "Adaptive allocation"): per slice the
weights served now, the leading variation and its probability of being best; the campaign's gain
against the best single variation and against the holdout, weighting each visitor by the
probability of the assignment they got (their revision's weights for their slice); the split
check of each revision against the weights it served."""
from collections import defaultdict

from server.allocation.recompute import slice_counts, slice_summary
from server.results import stats
from server.store.base import read_label

SRM_MIN_EXPECTED = 5  # visitors expected in a cell before it counts in the chi-square


def _weights_of(campaign, documents, revision, slice_name):
    """The weights an assignment labelled (revision, slice) was made with: that revision's for the
    slice, else (no revision, or none for the slice) the campaign's own."""
    own = [v["weight"] for v in campaign["variations"]]
    document = documents.get(revision) if revision else None
    found = (((document or {}).get("allocations") or {}).get(campaign["key"]) or {}).get("weights", {})
    weights = found.get(slice_name)
    return weights if isinstance(weights, list) and len(weights) == len(own) else own


def _cells(rows, campaign):
    """{(revision, slice): {variation or None: [visitors, conversions of the goal]}}."""
    goal = campaign["allocation"]["goal"]
    cells = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in rows:
        if row["campaign"] != campaign["key"]:
            continue
        _, revision, slice_name = read_label(row["channel"])
        if slice_name is None:
            continue
        cell = cells[revision or 0, slice_name][row["variation"]]
        if row["goal"] is None:
            cell[0] += row["visitors"]
        elif row["goal"] == goal:
            cell[1] += row["conversions"]
    return cells


def _gain(rows_by_cell, campaign, documents):
    """Rates of the campaign as served, of the holdout, and of each variation had every visitor
    of the campaign been given it (Horvitz-Thompson: each visitor's conversion divided by the
    probability of the variation they got, summed per variation, over all visitors)."""
    keys = [v["key"] for v in campaign["variations"]]
    visitors = conversions = held = held_conversions = 0
    weighted = dict.fromkeys(keys, 0.0)
    for (revision, slice_name), arms in rows_by_cell.items():
        weights = _weights_of(campaign, documents, revision, slice_name)
        for key, weight in zip(keys, weights):
            n, k = arms.get(key, (0, 0))
            visitors, conversions = visitors + n, conversions + k
            if weight > 0:
                weighted[key] += k / weight
        n, k = arms.get(None, (0, 0))
        held, held_conversions = held + n, held_conversions + k
    if not visitors:
        return None
    rate = conversions / visitors
    single = {key: total / visitors for key, total in weighted.items()}
    best = max(single, key=single.get)
    holdout_rate = held_conversions / held if held else None
    return {"rate": _round(rate), "holdout_rate": _round(holdout_rate),
            "single_variation_rates": {k: _round(v) for k, v in single.items()}, "best_single": best,
            "vs_best_single": _round(rate / single[best] - 1) if single[best] else None,
            "vs_holdout": _round(rate / holdout_rate - 1) if holdout_rate else None}


def _srm_by_revision(cells, campaign, documents):
    """Per revision: chi-square of the visitors each (slice, variation) got against the weights that
    revision served that slice, summed over slices (cells expecting fewer than 5 visitors left out)."""
    keys = [v["key"] for v in campaign["variations"]]
    by_revision = defaultdict(list)
    for (revision, slice_name), arms in cells.items():
        by_revision[revision].append((slice_name, arms))
    out = []
    for revision in sorted(by_revision):
        observed, expected = [], []
        for slice_name, arms in by_revision[revision]:
            weights = _weights_of(campaign, documents, revision, slice_name)
            counts = [arms.get(k, (0, 0))[0] for k in keys]
            total = sum(counts)
            pairs = [(o, total * w) for o, w in zip(counts, weights) if w > 0]
            if len(pairs) >= 2 and min(e for _, e in pairs) >= SRM_MIN_EXPECTED:
                observed.append([o for o, _ in pairs])
                expected.append([e for _, e in pairs])
        visitors = sum(sum(arms.get(k, (0, 0))[0] for k in keys) for _, arms in by_revision[revision])
        checked = stats.srm_check_pooled(observed, expected) if observed else None
        if checked is None:
            out.append({"revision": revision or None, "visitors": visitors, "status": "not_enough_data",
                        "p_value": None, "ok": None})
        else:
            p_value, ok = checked
            out.append({"revision": revision or None, "visitors": visitors, "status": "ok" if ok else "mismatch",
                        "p_value": _round(p_value), "ok": ok})
    return out


def allocation_result(campaign, rows, served_revision, documents):
    """The `allocation` of an adaptive campaign's results. `rows`: the site's labelled counters;
    `served_revision`: the revision document served now (or None); `documents`: {revision number:
    document} of every revision the labels name."""
    allocation = campaign["allocation"]
    served = ((((served_revision or {}).get("allocations") or {}).get(campaign["key"])) or {}).get("weights", {})
    cells = _cells(rows, campaign)
    return {"goal": allocation["goal"], "by": allocation.get("by", []), "explore": allocation.get("explore"),
            "revision": (served_revision or {}).get("revision"),
            "method": "inverse probability weighting",
            "slices": slice_summary(campaign, slice_counts(rows, campaign), served),
            "gain": _gain(cells, campaign, documents),
            "srm": _srm_by_revision(cells, campaign, documents)}


def _round(x):
    return None if x is None else round(x, 6)
