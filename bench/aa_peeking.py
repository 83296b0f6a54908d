"""aa_peeking: the false-positive rate of results' tests when a merchant looks every day, at full
size (tests/test_stats.py runs 1,000 experiments x 30 looks). A/A experiments, so every look that
calls a difference significant is a false positive (tests/simulation.py: the counters cumulated
as the stores do, tested by server/results/stats.py after results' minimum-sample rule).

Figure: the sequential mode's share of experiments ever called significant, alpha 0.05.
Baseline: the fixed-horizon test on the same experiments, peeked at daily (what the sequential
mode prevents). Target: <= alpha. The fixed test read once, at the end, is logged for contrast."""
import time

from tests.simulation import aa_false_positive_rates

from .common import Row, log

ALPHA = 0.05
REGIMES = [  # (label, metric, experiments, days, visitors per arm per day, conversion rate)
    ("rate, small shop", "conversion_rate", 10_000, 90, 50, 0.03),
    ("rate, busy shop", "conversion_rate", 10_000, 60, 2_000, 0.05),
    ("revenue/visitor", "revenue_per_visitor", 5_000, 60, 300, 0.05),
]


def run():
    rows = []
    for label, metric, experiments, days, per_day, rate in REGIMES:
        t0 = time.monotonic()
        rates = aa_false_positive_rates(experiments, days, per_day, rate, ALPHA, metric, seed=13)
        log(f"{label}: {experiments:,} A/A experiments x {days} daily looks, {per_day:,} visitors an arm a day, "
            f"rate {rate:.0%}: sequential {rates['sequential']:.2%}, fixed peeked daily {rates['fixed_peeking']:.2%}, "
            f"fixed read once {rates['fixed_once']:.2%} ({time.monotonic() - t0:.0f} s)")
        rows.append(Row("aa_peeking", f"false positives, sequential, {label}", rates["sequential"] * 100, "%",
                        rates["fixed_peeking"] * 100, "fixed test peeked daily", f"<= {ALPHA:.0%}",
                        rates["sequential"] <= ALPHA))
    return rows
