"""Statistics for results: two-proportion z-test and Welch's t-test with 95% CIs on the
relative uplift, and a chi-square sample-ratio-mismatch check. Standard library only."""
import math
from functools import lru_cache

Z95 = 1.959963984540054
SRM_ALPHA = 0.001  # the usual threshold: an SRM alarm must be rare on a healthy split


def normal_sf(z):
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_sf(x, df):
    """P(X >= x) for a chi-square with df degrees of freedom (regularised upper gamma)."""
    if x <= 0:
        return 1.0
    a, x2 = df / 2.0, x / 2.0
    if x2 < a + 1:  # series for the lower gamma
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x2 / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x2 + a * math.log(x2) - math.lgamma(a)))
    # Lentz's continued fraction for the upper gamma
    b = x2 + 1 - a
    c, d = 1e300, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1e-300 if abs(d) < 1e-300 else d
        c = b + an / c
        c = 1e-300 if abs(c) < 1e-300 else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x2 + a * math.log(x2) - math.lgamma(a)) * h)


def srm_check(observed, weights):
    """Chi-square goodness of fit of visitor counts against the configured weights."""
    total = sum(observed)
    if total == 0 or len(observed) < 2:
        return {"p_value": None, "ok": True}
    expected = [total * w for w in weights]
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected) if e > 0)
    p = chi2_sf(stat, len(observed) - 1)
    return {"p_value": round(p, 6), "ok": p >= SRM_ALPHA}


def compare_proportions(conv_a, n_a, conv_b, n_b):
    """B against A: relative uplift, its 95% CI (delta method on the ratio) and a two-sided
    p-value from the pooled two-proportion z-test. None where undefined."""
    if n_a == 0 or n_b == 0:
        return {"uplift": None, "ci": None, "p_value": None}
    p_a, p_b = conv_a / n_a, conv_b / n_b
    pooled = (conv_a + conv_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = 2 * normal_sf(abs(p_b - p_a) / se_pooled) if se_pooled > 0 else None
    if p_a == 0:
        return {"uplift": None, "ci": None, "p_value": _round(p_value)}
    uplift = p_b / p_a - 1
    # Var(pB/pA) ≈ (pB/pA)^2 * (Var(pB)/pB^2 + Var(pA)/pA^2)
    var_rel = p_a * (1 - p_a) / n_a / p_a**2 + (p_b * (1 - p_b) / n_b / p_b**2 if p_b > 0 else 0)
    half = Z95 * (p_b / p_a) * math.sqrt(var_rel)
    return {"uplift": _round(uplift), "ci": [_round(uplift - half), _round(uplift + half)], "p_value": _round(p_value)}


def _betacf(a, b, x):
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)), -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1 - front * _betacf(b, a, 1 - x) / b


def t_sf(t, df):
    """P(T >= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1 - tail


def t_quantile(p, df):
    """The t with P(T <= t) = p (p > 0.5), by bisection; cached per df to 3 decimals, the
    precision Welch's df deserves, so a results page computes each quantile once."""
    return _t_quantile(p, round(df, 3))


@lru_cache(maxsize=4096)
def _t_quantile(p, df):
    low, high = 0.0, 1.0
    while 1 - t_sf(high, df) < p:  # bracket first: high stays small for any useful df
        low, high = high, high * 2
    for _ in range(60):  # 2^-60 of the bracket: far below what a CI prints
        mid = (low + high) / 2
        if 1 - t_sf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def welch(sum_a, sq_a, n_a, sum_b, sq_b, n_b):
    """B against A on a per-visitor metric given sums and sums of squares: relative uplift of
    the mean, its 95% CI (delta method, t quantile at Welch's df) and the two-sided p-value."""
    if n_a < 2 or n_b < 2:
        return {"uplift": None, "ci": None, "p_value": None}
    mean_a, mean_b = sum_a / n_a, sum_b / n_b
    var_a = max(0.0, (sq_a - sum_a * sum_a / n_a) / (n_a - 1))
    var_b = max(0.0, (sq_b - sum_b * sum_b / n_b) / (n_b - 1))
    se2_a, se2_b = var_a / n_a, var_b / n_b
    se = math.sqrt(se2_a + se2_b)
    df_denominator = se2_a**2 / (n_a - 1) + se2_b**2 / (n_b - 1)
    if se == 0 or df_denominator == 0:  # no spread, or one too small to square in float64
        return {"uplift": _round(mean_b / mean_a - 1) if mean_a else None, "ci": None, "p_value": None}
    df = (se2_a + se2_b) ** 2 / df_denominator
    p_value = 2 * t_sf(abs(mean_b - mean_a) / se, df)
    if mean_a == 0:
        return {"uplift": None, "ci": None, "p_value": _round(p_value)}
    ratio = mean_b / mean_a
    # Var(mB/mA) ≈ ratio^2 * (se_b^2/mB^2 + se_a^2/mA^2)
    # (divided twice rather than by a square that can underflow to 0 for tiny means)
    rel_se = math.sqrt(se2_a / mean_a / mean_a + (se2_b / mean_b / mean_b if mean_b else 0.0)) * abs(ratio)
    half = t_quantile(0.975, df) * rel_se
    return {"uplift": _round(ratio - 1), "ci": [_round(ratio - 1 - half), _round(ratio - 1 + half)],
            "p_value": _round(p_value)}


def _round(x):
    return None if x is None or not math.isfinite(x) else round(x, 6)  # JSON has no inf or NaN
