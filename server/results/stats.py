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
    return Estimate(r, max(0.0, var_n - 2 * r * cov + r * r * var_d) / (n * mean_d * mean_d), n)


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
    if not (a.mean > 0 and b.mean > 0):
        return None
    with np.errstate(all="ignore"):  # amounts too small or large to square: no figure rather than inf
        theta, variance = log_ratio(a, b)
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(theta)):
        return None
    if mode == "sequential":
        low, high, p_value = sequential_interval(theta, variance, a.n + b.n, alpha)
    else:
        df = None
        if welch:
            rel_a, rel_b = _relative_variance(a), _relative_variance(b)
            df = variance**2 / (rel_a**2 / (a.n - 1) + rel_b**2 / (b.n - 1))
        low, high, p_value = fixed_interval(theta, variance, alpha, df)
    return {"uplift": math.expm1(theta), "ci": [math.expm1(low), math.expm1(high)], "p_value": float(p_value)}


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
    a, b = 1 + conversions, 1 + visitors - conversions
    mean_ = a / (a + b)
    return _Beta(a, b, mean_, math.sqrt(mean_ * (1 - mean_) / (a + b + 1)))


def bayes_rates(conversions_a, visitors_a, conversions_b, visitors_b):
    """{chance_to_win, expected_loss} of B against A with Beta posteriors (a uniform prior):
    P(rate_B > rate_A), and E[max(rate_A - rate_B, 0)] relative to A's posterior mean (the share
    of A's rate one expects to lose by choosing B). Integrated by Gauss-Legendre quadrature over
    the narrower posterior N, between its 1e-12 and 1 - 1e-12 quantiles, with the other posterior
    W in closed form at each point x: its distribution function and E[W 1{W <= x}] =
    mean_W P(W' <= x) for W' ~ Beta(a_W + 1, b_W) (since x f(x; a, b) = mean f(x; a + 1, b))."""
    post_a, post_b = _beta_posterior(conversions_a, visitors_a), _beta_posterior(conversions_b, visitors_b)
    a_is_narrow = post_a.sd <= post_b.sd
    narrow, wide = (post_a, post_b) if a_is_narrow else (post_b, post_a)
    low, high = distributions.beta.ppf([1e-12, 1 - 1e-12], narrow.a, narrow.b)
    nodes, weights = GAUSS_LEGENDRE
    x = (high - low) / 2 * nodes + (high + low) / 2
    weights = weights * distributions.beta.pdf(x, narrow.a, narrow.b)
    wide_cdf, wide_cdf_1 = distributions.beta.cdf(x, [[wide.a], [wide.a + 1]], wide.b)
    wide_below = wide.mean * wide_cdf_1  # E[W 1{W <= x}]
    if a_is_narrow:  # x is A: B wins where B > x; the loss is E[max(x - B, 0)]
        win, loss = 1 - wide_cdf, x * wide_cdf - wide_below
    else:  # x is B: B wins where A < x; the loss is E[max(A - x, 0)]
        win, loss = wide_cdf, (wide.mean - wide_below) - x * (1 - wide_cdf)
    mass = weights.sum()
    expected_loss = (weights @ loss) / mass / post_a.mean
    return {"chance_to_win": _clip((weights @ win) / mass), "expected_loss": max(0.0, float(expected_loss))}


def bayes_normal(a, b):
    """{chance_to_win, expected_loss} of B against A for a per-visitor metric: a normal
    approximation of the relative uplift mean_B / mean_A - 1 under a flat prior, its variance by
    the delta method (GrowthBook's Bayesian engine, gbstats' EffectBayesianABTest with
    difference_type "relative"): P(uplift > 0) and E[max(-uplift, 0)]."""
    if a.mean <= 0:
        return None
    with np.errstate(all="ignore"):
        ratio_ = b.mean / a.mean
        mu = ratio_ - 1
        variance = (np.sqrt(b.variance) / a.mean) ** 2 + (np.sqrt(a.variance) / a.mean * ratio_) ** 2
    if not (variance > 0 and math.isfinite(variance) and math.isfinite(mu)):
        return None
    sd = math.sqrt(variance)
    loss = sd * distributions.norm.pdf(mu / sd) - mu * distributions.norm.sf(mu / sd)
    return {"chance_to_win": _clip(distributions.norm.sf(-mu / sd)), "expected_loss": max(0.0, float(loss))}


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
    """(mean_y, mean_x, var_y, cov_xx, cov_xy) of one arm or of pooled sums (n - 1 denominators)."""
    sum_x, sum_xx, sum_xy = np.asarray(c.sum_x, float), np.asarray(c.sum_xx, float), np.asarray(c.sum_xy, float)
    mean_x, mean_y = sum_x / c.n, c.sum_y / c.n
    var_y = (c.sum_yy - c.n * mean_y * mean_y) / (c.n - 1)
    cov_xx = (sum_xx - c.n * np.outer(mean_x, mean_x)) / (c.n - 1)
    cov_xy = (sum_xy - c.n * mean_x * mean_y) / (c.n - 1)
    return mean_y, mean_x, var_y, cov_xx, cov_xy


def cuped(a, b):
    """The two arms' estimates adjusted by CUPED (Deng, Xu, Kohavi, Walker 2013) with k
    covariates: theta = Cov(x)^-1 Cov(x, y) over both arms' visitors together (as gbstats
    computes it for one covariate), each arm's mean_y - theta . (mean_x(arm) - mean_x(both)),
    its variance (var_y - 2 theta . cov_xy + theta^T cov_xx theta) / n from the arm's own
    moments. Returns (a', b'), or None when the covariates carry no information (singular)."""
    both = Covariates(a.n + b.n, a.sum_y + b.sum_y, a.sum_yy + b.sum_yy,
                      tuple(np.add(a.sum_x, b.sum_x)), tuple(map(tuple, np.add(a.sum_xx, b.sum_xx))),
                      tuple(np.add(a.sum_xy, b.sum_xy)))
    _, mean_x_all, _, cov_xx, cov_xy = _moments(both)
    try:
        theta = np.linalg.solve(cov_xx, cov_xy)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(theta)):
        return None
    adjusted = []
    for arm in (a, b):
        mean_y, mean_x, var_y, arm_xx, arm_xy = _moments(arm)
        variance = var_y - 2 * theta @ arm_xy + theta @ arm_xx @ theta
        adjusted.append(Estimate(float(mean_y - theta @ (mean_x - mean_x_all)), max(0.0, float(variance)) / arm.n, arm.n))
    return tuple(adjusted)


def srm_check(observed, weights):
    """Chi-square goodness of fit of visitor counts against the configured weights:
    (statistic's p-value, ok), or None when not computable (fewer than two weighted arms).
    ok is False below SRM_ALPHA."""
    pairs = [(o, w) for o, w in zip(observed, weights) if w > 0]
    total = sum(o for o, _ in pairs)
    if len(pairs) < 2 or total == 0:
        return None
    weight = sum(w for _, w in pairs)
    expected = [total * w / weight for _, w in pairs]
    p = float(distributions.chisquare([o for o, _ in pairs], expected).pvalue)
    return p, p >= SRM_ALPHA


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
