"""adaptive_sim: a simulated shop where the best variation differs per segment, run through the real
decision, bucketing and allocation code (server/decisions/decide.py, server/allocation/), counters
kept in memory as the stores label them (slice and revision).

The shop has the shape of the published comparison (three segments, three variations; the best
variation per segment averages a third more uplift than the best single variation: there +4% vs
+3%, here +40% vs +30% over a 5% base rate, so 600,000 visitors separate them). Visitors arrive
over 30 simulated days, each in one segment; the weights are recomputed every simulated hour,
833 visitors (the worker's cadence is 10 minutes: this is a shop of 139 visitors per cadence;
recomputing more often only helps, and each recompute reads every labelled counter, which grow
with the revisions). The same visitors, with the
same chance draws, go through four policies:

- adaptive per segment: `allocation: {mode: adaptive, by: [segment:...], explore: 0.1}`;
- adaptive without segments: the same with `by: []` (one slice);
- fixed: equal weights, never changed;
- oracle: each segment's best variation from the first visitor (weights 1/0/0 per slice).

Figure: the share of the oracle's extra conversions over the fixed test that adaptive per segment
captures, (adaptive - fixed) / (oracle - fixed). Baseline: the same share for adaptive without
segments. Targets: >= 80%, and the holdout keeps its 5% share of visitors. Deterministic (seeded)."""
import time

import numpy as np

from server.allocation.recompute import allocations_for
from server.decisions.decide import decide
from server.store.base import assignment_label

from .common import Row, log

SEED = 20261130
DAYS, VISITORS_PER_DAY, RECOMPUTES_PER_DAY = 30, 20_000, 24
BASE_RATE, HOLDOUT, EXPLORE = 0.05, 0.05, 0.1
SEGMENTS = ["newsletter", "mobile", "returning"]
VARIATIONS = ["a", "b", "c"]
UPLIFT = {  # relative uplift of each variation in each segment: a averages 30%, each segment's best 40%
    "newsletter": {"a": 0.40, "b": 0.20, "c": 0.25},
    "mobile": {"a": 0.20, "b": 0.40, "c": 0.20},
    "returning": {"a": 0.30, "b": 0.25, "c": 0.40},
}
ATTRIBUTES = {"newsletter": {"utm": {"source": "newsletter"}}, "mobile": {"device": {"type": "mobile"}},
              "returning": {"visit": {"returning": True}}}


def bundle(by, adaptive=True):
    campaign = {"key": "hero", "type": "experiment", "seed": "hero", "segment": None, "conditions": None,
                "pages": None, "trigger": None, "priority": 0, "group": None,
                "schedule": {"start": None, "end": None}, "cap": {"per_visitor": None, "per_session": None},
                "traffic": 1, "bucket_by": "visitor", "goals": ["purchase"],
                "variations": [{"key": k, "weight": 1 / 3, "actions": []} for k in VARIATIONS]}
    if adaptive:
        campaign["allocation"] = {"mode": "adaptive", "goal": "purchase", "by": by, "explore": EXPLORE,
                                  "min_visitors": 200}
    return {"site": "sim", "version": 1, "hash": 1, "goals": {"purchase": {"event": "purchase"}},
            "segments": {"newsletter": {"utm.source": "newsletter"}, "mobile": {"device.type": "mobile"},
                         "returning": {"visit.returning": True}},
            "campaigns": [campaign], "settings": {"holdout": HOLDOUT}}


class Policy:
    """One policy's bundle, its in-memory labelled counters and its tallies."""

    def __init__(self, name, served, recompute):
        self.name, self.bundle, self.recompute = name, served, recompute
        self.counters = {}  # (label, variation, goal) -> [visitors, conversions]
        self.conversions = self.visitors = self.held_out = self.revision = 0

    def visit(self, visitor, segment, chance):
        decision = decide(self.bundle, ATTRIBUTES[segment], visitor, now=0)
        self.visitors += 1
        if decision["holdout_campaigns"] or decision["holdout"]:
            self.held_out += 1
            variation, rate = None, BASE_RATE
        else:
            variation = decision["variations"]["hero"]
            rate = BASE_RATE * (1 + UPLIFT[segment][variation])
        converted = bool(chance < rate)
        self.conversions += converted
        made = (decision.get("slices") or {}).get("hero")
        label = assignment_label("web", made[1], made[0]) if made else "web"
        for goal, n, k in ((None, 1, 0), ("purchase", 0, int(converted))):
            cell = self.counters.setdefault((label, variation, goal), [0, 0])
            cell[0] += n
            cell[1] += k

    def rows(self):
        return [{"campaign": "hero", "variation": v, "goal": g, "channel": label, "visitors": n, "conversions": k}
                for (label, v, g), (n, k) in self.counters.items()]

    def allocate(self):
        if self.recompute:
            self.revision += 1
            self.bundle["revision"] = {"version": 1, "revision": self.revision,
                                       "allocations": allocations_for(self.bundle, self.rows(), "sim")}


def oracle():
    served = bundle([f"segment:{s}" for s in SEGMENTS])
    best = {s: max(VARIATIONS, key=lambda v: UPLIFT[s][v]) for s in SEGMENTS}
    weights = {f"segment:{s}": [1.0 if v == best[s] else 0.0 for v in VARIATIONS] for s in SEGMENTS}
    served["revision"] = {"version": 1, "revision": 1, "allocations": {"hero": {"weights": weights}}}
    return Policy("oracle", served, recompute=False)


def simulate(days=DAYS, per_day=VISITORS_PER_DAY, seed=SEED):
    rng = np.random.default_rng(seed)
    policies = [Policy("adaptive per segment", bundle([f"segment:{s}" for s in SEGMENTS]), True),
                Policy("adaptive without segments", bundle([]), True),
                Policy("fixed equal weights", bundle([], adaptive=False), False),
                oracle()]
    per_recompute = per_day // RECOMPUTES_PER_DAY
    total = days * per_day
    segments = rng.integers(0, len(SEGMENTS), size=total)
    chances = rng.random(size=total)  # common random numbers: the same visitor converts alike everywhere
    for i in range(total):
        visitor = f"v1.sim{seed % 997:03d}{i:08d}"
        for policy in policies:
            policy.visit(visitor, SEGMENTS[segments[i]], chances[i])
        if (i + 1) % per_recompute == 0:
            for policy in policies:
                policy.allocate()
    return policies


def run():
    t0 = time.monotonic()
    policies = simulate()
    seconds = time.monotonic() - t0
    by_name = {p.name: p for p in policies}
    fixed, best = by_name["fixed equal weights"].conversions, by_name["oracle"].conversions
    extra = best - fixed
    share = {p.name: float((p.conversions - fixed) / extra) for p in policies}
    for p in policies:
        log(f"{p.name}: {p.conversions:,} conversions from {p.visitors:,} visitors "
            f"({p.conversions / p.visitors:.3%}), {share[p.name]:.1%} of the oracle's {extra:,} extra conversions "
            f"over the fixed test; holdout {p.held_out / p.visitors:.2%}")
    final = by_name["adaptive per segment"].bundle["revision"]["allocations"]["hero"]["weights"]
    log("adaptive per segment, final weights (a, b, c): "
        + "; ".join(f"{s}: {', '.join(f'{w:.3f}' for w in final[s])}" for s in sorted(final)))
    log(f"{DAYS} days x {VISITORS_PER_DAY:,} visitors x 4 policies in {seconds:.0f} s")
    adaptive = by_name["adaptive per segment"]
    held = adaptive.held_out / adaptive.visitors
    return [
        Row("adaptive_sim", "share of the oracle's extra conversions, adaptive per segment",
            share["adaptive per segment"] * 100, "%", share["adaptive without segments"] * 100,
            "adaptive without segments", ">= 80%", share["adaptive per segment"] >= 0.8),
        Row("adaptive_sim", "holdout share of visitors, adaptive per segment", held * 100, "%", HOLDOUT * 100,
            "settings.holdout", "within 0.3 points", bool(abs(held - HOLDOUT) <= 0.003)),
        *[Row("adaptive_sim", f"conversions, {p.name}", p.conversions, "", fixed, "fixed equal weights")
          for p in policies],
        Row("adaptive_sim", "counter labels, adaptive per segment (slices x revisions that made weights)",
            len({label for label, _, _ in adaptive.counters}), "", adaptive.revision, "revisions published"),
        Row("adaptive_sim", "run time", seconds, "s", target="< 300 s", ok=seconds < 300),
    ]
