"""A/A simulations of results' tests looked at every day: experiments where the variation is the
control, so every look that calls a difference significant is a false positive.
tests/test_stats.py runs one of 1,000 experiments; bench/aa_peeking.py runs them at full size.

Each experiment gets visitors every day (Poisson around `visitors_per_day` per arm) who convert
at `rate`, and converters spend a log-normal amount (for revenue per visitor); the counters are
cumulated as the stores cumulate them, and each day every experiment is tested with the very
functions results use (server/results/stats.py), vectorised over the experiments, after the same
minimum-sample rule as results (server/results/report.py)."""
import numpy as np

from server.results import report, stats


def _daily_counts(rng, experiments, days, visitors_per_day, rate, revenue):
    """Cumulative visitors, converters and (when `revenue`) revenue and revenue^2 sums: arrays
    [arm, experiment, day]."""
    visitors = rng.poisson(visitors_per_day, (2, experiments, days))
    converters = rng.binomial(visitors, rate)
    counts = [visitors, converters]
    if revenue:  # each converter's spend: log-normal, mean about 60, skewed as shop orders are
        cell = np.repeat(np.arange(converters.size), converters.ravel())
        spend = rng.lognormal(3.8, 0.8, cell.size)
        counts += [np.bincount(cell, x, converters.size).reshape(converters.shape) for x in (spend, spend * spend)]
    return [x.cumsum(axis=2) for x in counts]


def aa_false_positive_rates(experiments=1000, days=30, visitors_per_day=200, rate=0.05, alpha=0.05,
                            metric="conversion_rate", seed=2026):
    """{"sequential", "fixed_peeking", "fixed_once"}: the share of experiments that some daily look
    (the last one only, for fixed_once) calls significant at `alpha`."""
    rng = np.random.default_rng(seed)
    visitors, converters, *revenue = _daily_counts(rng, experiments, days, visitors_per_day, rate,
                                                   metric == "revenue_per_visitor")
    enough = ((visitors >= report.MIN_VISITORS) & (converters >= report.MIN_CONVERSIONS)).all(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # looks without enough data are masked out
        if metric == "conversion_rate":
            arms = [stats.rate(converters[i], visitors[i]) for i in (0, 1)]
        else:
            arms = [stats.mean(revenue[0][i], revenue[1][i], visitors[i]) for i in (0, 1)]
        theta, variance = stats.log_ratio(*arms)
        sequential = stats.sequential_interval(theta, variance, visitors.sum(axis=0), alpha)[2]
        fixed = stats.fixed_interval(theta, variance, alpha)[2]
    sequential_hit = enough & (sequential < alpha)
    fixed_hit = enough & (fixed < alpha)
    return {"sequential": float(sequential_hit.any(axis=1).mean()), "fixed_peeking": float(fixed_hit.any(axis=1).mean()),
            "fixed_once": float(fixed_hit[:, -1].mean()), "experiments": experiments, "looks": days}
