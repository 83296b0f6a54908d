"""Statistics for results: two-proportion z-test with a 95% CI on relative uplift, and a
chi-square sample-ratio-mismatch check. Standard library only."""
import math

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


def _round(x):
    return None if x is None else round(x, 6)
