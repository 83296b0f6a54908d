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


def _daily_counts(rng, experiments, days, visitors_per_day, rate):
    """Cumulative visitors, converters, revenue and revenue^2 sums: arrays [arm, experiment, day]."""
    visitors = rng.poisson(visitors_per_day, (2, experiments, days))
    converters = rng.binomial(visitors, rate)
    # Each converter's revenue: log-normal, mean about 60, heavily skewed as shop orders are.
    cell = np.repeat(np.arange(converters.size), converters.ravel())
    spend = rng.lognormal(3.8, 0.8, cell.size)
    revenue = np.bincount(cell, spend, converters.size).reshape(converters.shape)
    revenue_sq = np.bincount(cell, spend * spend, converters.size).reshape(converters.shape)
    return [x.cumsum(axis=2) for x in (visitors, converters, revenue, revenue_sq)]


def aa_false_positive_rates(experiments=1000, days=30, visitors_per_day=200, rate=0.05, alpha=0.05,
                            metric="conversion_rate", seed=2026):
    """{"sequential", "fixed_peeking", "fixed_once"}: the share of experiments that some daily look
    (the last one only, for fixed_once) calls significant at `alpha`."""
    rng = np.random.default_rng(seed)
    visitors, converters, revenue, revenue_sq = _daily_counts(rng, experiments, days, visitors_per_day, rate)
    enough = ((visitors >= report.MIN_VISITORS) & (converters >= report.MIN_CONVERSIONS)).all(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):  # looks without enough data are masked out
        if metric == "conversion_rate":
            arms = [stats.rate(converters[i], visitors[i]) for i in (0, 1)]
        else:
            arms = [stats.mean(revenue[i], revenue_sq[i], visitors[i]) for i in (0, 1)]
        theta, variance = stats.log_ratio(*arms)
        sequential = stats.sequential_interval(theta, variance, visitors.sum(axis=0), alpha)[2]
        fixed = stats.fixed_interval(theta, variance, alpha)[2]
    sequential_hit = enough & (sequential < alpha)
    fixed_hit = enough & (fixed < alpha)
    return {"sequential": sequential_hit.any(axis=1).mean(), "fixed_peeking": fixed_hit.any(axis=1).mean(),
            "fixed_once": fixed_hit[:, -1].mean(), "experiments": experiments, "looks": days}
