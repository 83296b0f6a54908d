"""Planning: how many visitors an experiment on a conversion rate needs (`vitrina sample-size`,
`GET /api/v1/sites/<site>/sample-size`)."""
import math

from scipy import optimize
from scipy import stats as distributions

from server.results.stats import SEQUENTIAL_TUNING, sequential_interval

PARAMETERS = {  # name: (type, default, check, what it must be)
    "baseline": (float, None, lambda x: 0 < x < 1, "a conversion rate between 0 and 1, exclusive"),
    "mde": (float, None, lambda x: x > -1 and x != 0,
            "the minimum detectable effect, relative to the baseline (0.1 for +10%), above -1 and not 0"),
    "alpha": (float, 0.05, lambda x: 0 < x <= 0.2, "a significance level above 0 and at most 0.2"),
    "power": (float, 0.8, lambda x: 0.5 <= x < 1, "a probability from 0.5, below 1"),
    "variations": (int, 2, lambda x: 2 <= x <= 20, "the number of arms, control included: 2 to 20"),
}
MAX_VISITORS = 10**12  # past this an effect is too small to plan for


def problems(values):
    """[{path, message}] for the raw (string) values given, by the API's and the CLI's rules."""
    found = []
    for name, (kind, default, check, what) in PARAMETERS.items():
        raw = values.get(name)
        if raw is None and default is None:
            found.append({"path": f"/{name}", "message": f"is required: {what}"})
            continue
        try:
            value = default if raw is None else kind(raw)
            ok = math.isfinite(value) and check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            found.append({"path": f"/{name}", "message": f"must be {what}"})
    if not found and float(values["baseline"]) * (1 + float(values["mde"])) >= 1:
        found.append({"path": "/mde", "message": "baseline x (1 + mde) must stay below 1"})
    return found


def parse(values):
    """The typed parameters, defaults filled in; call `problems` first."""
    return {name: kind(values[name]) if values.get(name) is not None else default
            for name, (kind, default, _, _) in PARAMETERS.items()}


def sample_size(baseline, mde, alpha=0.05, power=0.8, variations=2):
    """Visitors per arm to detect a relative change `mde` of the conversion rate `baseline`
    with probability `power`, comparing each of `variations - 1` arms with control at a
    Bonferroni share of `alpha` (a plan that holds whatever the adjustment).

    `fixed`: the fixed-horizon Wald test on the log ratio of the rates that results run in
    fixed mode, looked at once: n = (z_{1-a/2} + z_power)^2 ((1-p1)/p1 + (1-p2)/p2) / log(p2/p1)^2.
    `sequential`: the visitors per arm by which the sequential mode's confidence sequence
    excludes 0 with probability `power` when the effect is `mde` (a plan for the default mode:
    looking earlier is allowed, and stops sooner when the effect is larger)."""
    per_comparison_alpha = alpha / (variations - 1)
    p2 = baseline * (1 + mde)
    effect = abs(math.log1p(mde))
    unit_variance = (1 - baseline) / baseline + (1 - p2) / p2  # Var(log ratio) x visitors per arm
    z = distributions.norm.isf(per_comparison_alpha / 2) + distributions.norm.isf(1 - power)
    fixed = math.ceil(z * z * unit_variance / effect**2)

    def margin(n):  # > 0 once P(estimate > the sequence's half-width) >= power
        variance = unit_variance / n
        _, half, _ = sequential_interval(0.0, variance, 2 * n, per_comparison_alpha)
        return effect - half - distributions.norm.ppf(power) * math.sqrt(variance)

    sequential = None
    if margin(1) >= 0:
        sequential = 1
    elif margin(MAX_VISITORS) > 0:
        sequential = math.ceil(optimize.brentq(margin, 1, MAX_VISITORS, xtol=0.5))
    return {
        "baseline": baseline, "mde": mde, "alpha": alpha, "power": power, "variations": variations,
        "expected_rate": p2,
        "fixed": {"visitors_per_variation": fixed, "visitors": fixed * variations},
        "sequential": None if sequential is None else
        {"visitors_per_variation": sequential, "visitors": sequential * variations,
         "tuning": SEQUENTIAL_TUNING},
    }
