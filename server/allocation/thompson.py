"""Thompson sampling on plain numbers: the probability that each variation has the best conversion
rate, and the weights it gives (docs/DESIGN.md "Adaptive allocation"). numpy draws the Beta
posteriors; nothing here knows a store."""
import numpy as np

DRAWS = 20_000  # posterior draws per slice: P(best) within about ±0.007 (1.96 sqrt(0.25 / DRAWS))
DIGITS = 4      # weights are published rounded: smaller bundles, and the same bytes in every language


def probability_best(arms, rng, draws=DRAWS):
    """P(each arm has the highest rate) under Beta(1 + conversions, 1 + visitors - conversions)
    posteriors (a uniform prior), estimated from `draws` joint draws. `arms`: [(visitors, conversions)]."""
    visitors = np.array([v for v, _ in arms], dtype=float)
    conversions = np.minimum(np.array([c for _, c in arms], dtype=float), visitors)
    samples = rng.beta(1 + conversions, 1 + visitors - conversions, size=(draws, len(arms)))
    return np.bincount(samples.argmax(axis=1), minlength=len(arms)) / draws


def adaptive_weights(arms, control, control_weight, explore, rng, draws=DRAWS):
    """One weight per arm, summing to 1: `control` (an index, or None) keeps `control_weight`; the
    other arms share the rest, `explore` of it evenly and the remainder by their probability of
    being the best of them (the control is a fixed baseline, never adapted)."""
    adapted = [i for i in range(len(arms)) if i != control]
    free = 1.0 - (control_weight if control is not None else 0.0)
    best = probability_best([arms[i] for i in adapted], rng, draws)
    shares = (1 - explore) * best + explore / len(adapted)
    weights = [0.0] * len(arms)
    if control is not None:
        weights[control] = round(control_weight, DIGITS)
    for i, share in zip(adapted, shares):
        weights[i] = round(free * float(share), DIGITS)
    return weights
