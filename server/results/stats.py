"""The statistics of results, on plain numbers (no store, no Flask), with scipy.stats' distributions.

Each arm of a comparison is reduced to an `Estimate` of its metric's mean (a conversion rate,
revenue per visitor, an average order value, or one of them adjusted by CUPED) and the variance
of that estimate; `compare` turns a baseline's and a variation's estimates into the relative
uplift, its interval and its p-value, all from one statistic (the log of the ratio of the two
means), so the interval excludes 0 exactly when the p-value is below alpha, and an uplift
interval never goes below -100%. docs/DESIGN.md "Results" says why each method.
"""
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as distributions

SRM_ALPHA = 0.001  # the usual threshold: an SRM alarm must be rare on a healthy split
# The confidence sequence is tightest when this many visitors (both arms) have been compared;
# GrowthBook's default. Earlier and later looks are valid too, a little wider.
SEQUENTIAL_TUNING = 5000
# Gauss-Legendre nodes and weights on [-1, 1] for the Beta integrals: 64 points put the chance to
# win within 1e-9 of the exact sum (tests/test_stats.py).
GAUSS_LEGENDRE = np.polynomial.legendre.leggauss(64)


@dataclass(frozen=True)
class Estimate:
    """An arm's metric: `mean`, the variance of that estimate (`variance`, sigma^2 / n), and the
    visitors it comes from (`n`)."""
    mean: float
    variance: float
    n: int


def rate(conversions, visitors):
    """The conversion rate of an arm (a binomial proportion)."""
    p = conversions / visitors
    return Estimate(p, p * (1 - p) / visitors, visitors)


def _sample_variance(total, total_sq, n):
    return np.maximum(0.0, (total_sq - total * total / n) / (n - 1))


def mean(total, total_sq, n):
    """A per-visitor mean (revenue per visitor) from the sum and the sum of squares over visitors."""
    return Estimate(total / n, _sample_variance(total, total_sq, n) / n, n)


def ratio(numerator, numerator_sq, denominator, denominator_sq, cross, n):
    """A ratio of two per-visitor sums (revenue / orders: the average order value), its variance
    by the delta method over visitors, so several orders of one visitor are not counted as
    independent: Var(N/D) ~ (var_N - 2 R cov_ND + R^2 var_D) / (n mean_D^2), R = N/D."""
    r = numerator / denominator
    mean_d = denominator / n
    var_n = _sample_variance(numerator, numerator_sq, n)
    var_d = _sample_variance(denominator, denominator_sq, n)
    cov = (cross - numerator * denominator / n) / (n - 1)
    return Estimate(r, np.maximum(0.0, var_n - 2 * r * cov + r * r * var_d) / (n * mean_d * mean_d), n)


def log_ratio(a, b):
    """(theta, variance) of theta = log(mean_B / mean_A), by the delta method
    Var(theta) ~ var_A / mean_A^2 + var_B / mean_B^2. Estimates of numbers or of numpy arrays."""
    return np.log(b.mean / a.mean), _relative_variance(a) + _relative_variance(b)


def _relative_variance(estimate):
    """variance / mean^2, as (sd / mean)^2 so that tiny means cannot underflow to 0 / 0."""
    return (np.sqrt(estimate.variance) / estimate.mean) ** 2


def compare(a, b, mode="sequential", alpha=0.05, welch=False):
    """B against A: {uplift, ci, p_value} of the relative uplift mean_B / mean_A - 1, all three
    from the one statistic of `log_ratio`. In `fixed` mode the interval and the two-sided p-value
    are Wald's, with the normal distribution, or Student's t at Welch-Satterthwaite's degrees of
    freedom when `welch`; in `sequential` mode they are the always-valid confidence sequence and
    p-value of `sequential_interval`. Both ends are mapped back with exp(.) - 1, so the interval
    never goes below -100%. None unless both means and the variance are > 0."""
    uplift, low, high, p_value = (float(x) for x in compare_many(a, b, mode, alpha, welch))
    if math.isnan(p_value):
        return None
    return {"uplift": uplift, "ci": [low, high], "p_value": p_value}


def compare_many(a, b, mode="sequential", alpha=0.05, welch=False):
    """`compare` over estimates of numpy arrays (results compute every comparison of a campaign
    and its slices at once): arrays (uplift, low, high, p_value), NaN where compare gives None."""
    a, b = _as_arrays(a), _as_arrays(b)
    with np.errstate(all="ignore"):  # amounts too small or large to square: no figure rather than inf
        theta, variance = log_ratio(a, b)
        ok = (np.asarray(a.mean) > 0) & (np.asarray(b.mean) > 0) & (variance > 0) & np.isfinite(variance) \
            & np.isfinite(theta)
        theta, variance = np.where(ok, theta, 0.0), np.where(ok, variance, 1.0)
        if mode == "sequential":
            low, high, p_value = sequential_interval(theta, variance, a.n + b.n, alpha)
        else:
            df = None
            if welch:
                rel_a, rel_b = _relative_variance(a), _relative_variance(b)
                df = variance**2 / (rel_a**2 / (np.asarray(a.n) - 1) + rel_b**2 / (np.asarray(b.n) - 1))
            low, high, p_value = fixed_interval(theta, variance, alpha, df)
        return tuple(np.where(ok, x, np.nan) for x in (np.expm1(theta), np.expm1(low), np.expm1(high), p_value))


def _as_arrays(estimate):
    """The estimate with numpy values: a division by zero gives inf or NaN, never an exception."""
    return Estimate(np.asarray(estimate.mean, float), np.asarray(estimate.variance, float), np.asarray(estimate.n))


def fixed_interval(estimate, variance, alpha, df=None):
    """(low, high, p) of a Wald test of estimate = 0: normal, or Student's t with df. Takes
    numbers or numpy arrays (the A/A simulations run thousands of looks at once)."""
    law, shape = (distributions.norm, ()) if df is None else (distributions.t, (df,))
    se = np.sqrt(variance)
    half = law.isf(alpha / 2, *shape) * se
    return estimate - half, estimate + half, np.minimum(1.0, 2 * law.sf(np.abs(estimate) / se, *shape))


def sequential_interval(estimate, variance, n, alpha, tuning=SEQUENTIAL_TUNING):
    """(low, high, p) of the asymptotic confidence sequence of Waudby-Smith et al. (2024, "Time-
    uniform central limit theory and asymptotic confidence sequences", Annals of Statistics,
    eq. 9; the normal-mixture boundary of GrowthBook's sequential engine): valid at every look
    at once, so a merchant may look every day. `n` is the number of visitors the estimate comes
    from; the mixture's rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / tuning makes the
    sequence tightest at n = tuning. The p-value is 1 / the mixture martingale (an e-value),
    capped at 1: below alpha exactly when the interval excludes 0. Numbers or numpy arrays."""
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning
    spread = n * rho2 + 1
    half = np.sqrt(variance * 2 * spread / (n * rho2) * np.log(np.sqrt(spread) / alpha))
    log_e_value = rho2 * estimate**2 * n / variance / (2 * spread) - 0.5 * np.log(spread)
    return estimate - half, estimate + half, np.exp(-np.maximum(0.0, log_e_value))


def worse(a, b, mode="sequential", alpha=0.05, welch=False):
    """The one-sided p-value of "B is worse than A" (mean_B < mean_A) on the statistic of
    `compare`, for guardrails; None when not computable. `fixed`: the Wald (or Welch t) test's
    lower tail. `sequential`: `sequential_one_sided_p`."""
    if not (a.mean > 0 and b.mean > 0):
        return None
    with np.errstate(all="ignore"):
        theta, variance = log_ratio(a, b)
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(theta)):
        return None
    if mode == "sequential":
        return float(sequential_one_sided_p(theta, variance, a.n + b.n, alpha))
    if welch:
        rel_a, rel_b = _relative_variance(a), _relative_variance(b)
        df = variance**2 / (rel_a**2 / (a.n - 1) + rel_b**2 / (b.n - 1))
        return float(distributions.t.cdf(theta / math.sqrt(variance), df))
    return float(distributions.norm.cdf(theta / math.sqrt(variance)))


def sequential_one_sided_p(estimate, variance, n, alpha, tuning=SEQUENTIAL_TUNING):
    """Always-valid p-value of "estimate < 0": 1 / the one-sided normal-mixture martingale, the
    mixture of `sequential_interval` over negative drifts only (a half-normal mixing density,
    Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", the
    one-sided normal mixture), which is 2 Phi(-z) times the two-sided one, z = estimate
    sqrt(rho^2 n / (variance (n rho^2 + 1))): valid at every look, as the interval. Capped at 1.
    Numbers or numpy arrays."""
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / tuning
    spread = n * rho2 + 1
    log_two_sided = rho2 * estimate**2 * n / variance / (2 * spread) - 0.5 * np.log(spread)
    z = estimate * np.sqrt(rho2 * n / (variance * spread))
    log_e_value = math.log(2) + distributions.norm.logcdf(-z) + log_two_sided
    return np.exp(-np.maximum(0.0, log_e_value))


class _Beta(NamedTuple):
    a: float
    b: float
    mean: float
    sd: float


def _beta_posterior(conversions, visitors):
    """Beta(1 + conversions, 1 + visitors - conversions): a uniform prior updated by the arm."""
    a, b = 1 + np.asarray(conversions, float), 1 + np.asarray(visitors, float) - conversions
    mean_ = a / (a + b)
    return _Beta(a, b, mean_, np.sqrt(mean_ * (1 - mean_) / (a + b + 1)))


def bayes_rates(conversions_a, visitors_a, conversions_b, visitors_b):
    """{chance_to_win, expected_loss} of B against A with Beta posteriors (a uniform prior):
    P(rate_B > rate_A), and E[max(rate_A - rate_B, 0)] relative to A's posterior mean (the share
    of A's rate one expects to lose by choosing B). See `bayes_rates_many`."""
    chance, loss = bayes_rates_many(*(np.array([x], float) for x in (conversions_a, visitors_a, conversions_b,
                                                                      visitors_b)))
    return {"chance_to_win": float(chance[0]), "expected_loss": float(loss[0])}


def bayes_rates_many(conversions_a, visitors_a, conversions_b, visitors_b):
    """`bayes_rates` over arrays: (chance_to_win, expected_loss) arrays. Integrated by
    Gauss-Legendre quadrature over the narrower posterior N, between its 1e-12 and 1 - 1e-12
    quantiles, with the other posterior W in closed form at each point x: its distribution
    function and E[W 1{W <= x}] = mean_W P(W' <= x) for W' ~ Beta(a_W + 1, b_W) (since
    x f(x; a, b) = mean f(x; a + 1, b))."""
    post_a, post_b = _beta_posterior(conversions_a, visitors_a), _beta_posterior(conversions_b, visitors_b)
    a_is_narrow = post_a.sd <= post_b.sd
    narrow = _Beta(*(np.where(a_is_narrow, x, y) for x, y in zip(post_a, post_b)))
    wide = _Beta(*(np.where(a_is_narrow, y, x) for x, y in zip(post_a, post_b)))
    bounds = distributions.beta.ppf([1e-12, 1 - 1e-12], narrow.a[:, None], narrow.b[:, None])
    low, high = bounds[:, :1], bounds[:, 1:]
    nodes, weights = GAUSS_LEGENDRE
    x = (high - low) / 2 * nodes + (high + low) / 2
    weights = weights * distributions.beta.pdf(x, narrow.a[:, None], narrow.b[:, None])
    wide_cdf, wide_cdf_1 = distributions.beta.cdf(x, np.stack([wide.a, wide.a + 1])[:, :, None], wide.b[:, None])
    wide_below = wide.mean[:, None] * wide_cdf_1  # E[W 1{W <= x}]
    narrow_a = a_is_narrow[:, None]
    # x is A: B wins where B > x; the loss is E[max(x - B, 0)]. x is B: B wins where A < x, the
    # loss is E[max(A - x, 0)].
    win = np.where(narrow_a, 1 - wide_cdf, wide_cdf)
    loss = np.where(narrow_a, x * wide_cdf - wide_below, (wide.mean[:, None] - wide_below) - x * (1 - wide_cdf))
    mass = weights.sum(axis=1)
    chance = np.clip((weights * win).sum(axis=1) / mass, 0.0, 1.0)
    return chance, np.maximum(0.0, (weights * loss).sum(axis=1) / mass / post_a.mean)


def bayes_normal(a, b):
    """{chance_to_win, expected_loss} of B against A for a per-visitor metric: a normal
    approximation of the relative uplift mean_B / mean_A - 1 under a flat prior, its variance by
    the delta method (GrowthBook's Bayesian engine, gbstats' EffectBayesianABTest with
    difference_type "relative"): P(uplift > 0) and E[max(-uplift, 0)]."""
    chance, loss = bayes_normal_many(a, b)
    if math.isnan(chance):
        return None
    return {"chance_to_win": float(chance), "expected_loss": float(loss)}


def bayes_normal_many(a, b):
    """`bayes_normal` over estimates of arrays: (chance_to_win, expected_loss), NaN where None."""
    a, b = _as_arrays(a), _as_arrays(b)
    with np.errstate(all="ignore"):
        ratio_ = b.mean / a.mean
        mu = ratio_ - 1
        variance = (np.sqrt(b.variance) / a.mean) ** 2 + (np.sqrt(a.variance) / a.mean * ratio_) ** 2
        ok = (np.asarray(a.mean) > 0) & (variance > 0) & np.isfinite(variance) & np.isfinite(mu)
        sd, mu = np.sqrt(np.where(ok, variance, 1.0)), np.where(ok, mu, 0.0)
        loss = sd * distributions.norm.pdf(mu / sd) - mu * distributions.norm.sf(mu / sd)
        chance = np.clip(distributions.norm.sf(-mu / sd), 0.0, 1.0)
    return np.where(ok, chance, np.nan), np.where(ok, np.maximum(0.0, loss), np.nan)


@dataclass(frozen=True)
class Covariates:
    """An arm's sums for CUPED over its n visitors: y their metric (conversion 0/1 or revenue),
    x their k pre-exposure covariates. sum_x: [k], sum_xx: [k][k] (sum of x x^T),
    sum_xy: [k] (sum of x y); sum_y and sum_yy as for `mean`."""
    n: int
    sum_y: float
    sum_yy: float
    sum_x: tuple
    sum_xx: tuple
    sum_xy: tuple


def _moments(c):
    """(mean_y, mean_x, var_y, cov_xx, cov_xy) of arms (leading axis: one arm per row), or of
    their pooled sums, with n - 1 denominators."""
    n = np.asarray(c.n, float)
    sum_x, sum_xx, sum_xy = np.asarray(c.sum_x, float), np.asarray(c.sum_xx, float), np.asarray(c.sum_xy, float)
    mean_x, mean_y = sum_x / n[:, None], np.asarray(c.sum_y, float) / n
    var_y = (np.asarray(c.sum_yy, float) - n * mean_y * mean_y) / (n - 1)
    cov_xx = (sum_xx - n[:, None, None] * mean_x[:, :, None] * mean_x[:, None, :]) / (n - 1)[:, None, None]
    cov_xy = (sum_xy - n[:, None] * mean_x * mean_y[:, None]) / (n - 1)[:, None]
    return mean_y, mean_x, var_y, cov_xx, cov_xy


def cuped(a, b):
    """The two arms' estimates adjusted by CUPED (Deng, Xu, Kohavi, Walker 2013) with k
    covariates: theta = Cov(x)^-1 Cov(x, y) over both arms' visitors together (as gbstats
    computes it for one covariate), each arm's mean_y - theta . (mean_x(arm) - mean_x(both)),
    its variance (var_y - 2 theta . cov_xy + theta^T cov_xx theta) / n from the arm's own
    moments. Returns (a', b'), or None when the covariates carry no information (singular)."""
    def one(c):
        return Covariates(*(np.array([x], float) for x in (c.n, c.sum_y, c.sum_yy, c.sum_x, c.sum_xx, c.sum_xy)))
    adjusted_a, adjusted_b, ok = cuped_many(one(a), one(b))
    if not ok[0]:
        return None
    return tuple(Estimate(float(e.mean[0]), float(e.variance[0]), int(e.n[0])) for e in (adjusted_a, adjusted_b))


def cuped_many(a, b):
    """`cuped` over Covariates of arrays (a leading axis of pairs): (a', b', ok), ok False where
    the covariates carry no information (Cov(x) singular: a zero pivot, as numpy's solve would
    raise) or theta is not finite."""
    both = Covariates(*(np.add(x, y) for x, y in zip(
        (a.n, a.sum_y, a.sum_yy, a.sum_x, a.sum_xx, a.sum_xy), (b.n, b.sum_y, b.sum_yy, b.sum_x, b.sum_xx, b.sum_xy))))
    with np.errstate(all="ignore"):
        _, mean_x_all, _, cov_xx, cov_xy = _moments(both)
        singular = ~(np.linalg.det(cov_xx) != 0)  # NaN counts as singular
        cov_xx = np.where(singular[:, None, None], np.eye(cov_xx.shape[-1]), cov_xx)
        theta = np.linalg.solve(cov_xx, cov_xy[..., None])[..., 0]
        ok = ~singular & np.isfinite(theta).all(axis=1)
        adjusted = []
        for arm in (a, b):
            mean_y, mean_x, var_y, arm_xx, arm_xy = _moments(arm)
            variance = var_y - 2 * np.einsum("mi,mi->m", theta, arm_xy) + np.einsum("mi,mij,mj->m", theta, arm_xx, theta)
            mean = mean_y - np.einsum("mi,mi->m", theta, mean_x - mean_x_all)
            adjusted.append(Estimate(mean, np.maximum(0.0, variance) / np.asarray(arm.n, float), np.asarray(arm.n)))
    return adjusted[0], adjusted[1], ok


def srm_check_pooled(observed, expected):
    """One chi-square over several groups (each a list of visitor counts and the counts its weights
    expect): the statistics and degrees of freedom summed, as independent groups add. (p-value,
    ok), or None when no group has two arms."""
    groups = [(o, e) for o, e in zip(observed, expected) if len(o) >= 2 and sum(o) > 0]
    if not groups:
        return None
    statistic = sum(sum((a - b) ** 2 / b for a, b in zip(o, e)) for o, e in groups)
    p = float(distributions.chi2.sf(statistic, sum(len(o) - 1 for o, _ in groups)))
    return p, p >= SRM_ALPHA


def srm_check(observed, weights):
    """Chi-square goodness of fit of visitor counts against the configured weights:
    (statistic's p-value, ok), or None when not computable (fewer than two weighted arms).
    ok is False below SRM_ALPHA."""
    return srm_check_many([observed], weights)[0]


def srm_check_many(observed_rows, weights):
    """`srm_check` of several rows of visitor counts against the same weights, with one chi-square
    call for all: [(p, ok) or None] in row order."""
    keep = [w > 0 for w in weights]
    if sum(keep) < 2:
        return [None] * len(observed_rows)
    weighted = np.array([w for w, k in zip(weights, keep) if k], float)
    observed = np.array([[o for o, k in zip(row, keep) if k] for row in observed_rows], float).reshape(-1, len(weighted))
    totals = observed.sum(axis=1)
    counted = totals > 0
    found = [None] * len(observed_rows)
    if counted.any():
        expected = totals[counted, None] * weighted / weighted.sum()
        p_values = distributions.chisquare(observed[counted], expected, axis=1).pvalue
        for i, p in zip(np.flatnonzero(counted), np.atleast_1d(p_values)):
            found[i] = (float(p), bool(p >= SRM_ALPHA))
    return found


def benjamini_hochberg(p_values):
    """Benjamini-Hochberg adjusted p-values (scipy's false_discovery_control), in input order."""
    if not p_values:
        return []
    return [float(p) for p in distributions.false_discovery_control(p_values, method="bh")]


def holm(p_values):
    """Holm's step-down adjusted p-values (family-wise error), in input order."""
    if not p_values:
        return []
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, stepped)
    return [float(x) for x in adjusted]


def _clip(p):
    return min(1.0, max(0.0, float(p)))
