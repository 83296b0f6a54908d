"""Bucketing is fair: chi-square tests of uniformity and independence over 100,000 visitor ids.

No scipy: the statistic is computed here and compared with the chi-square critical value at
p = 0.001 for the test's degrees of freedom (a statistical constant, from any chi-square table).
A fair hash fails one of these tests about once in a thousand runs per test; the ids are
fixed, so a pass is reproducible and a failure means the hash or the bucketing changed.
"""
import random
from collections import Counter

import pytest

from server.decisions.bucketing import hash
from server.decisions.decide import choose_variation

N = 100_000
# Upper 0.001 quantile of the chi-square distribution, by degrees of freedom.
CRITICAL_P001 = {1: 10.828, 2: 13.816, 3: 16.266, 6: 22.458, 99: 148.230}


def _ids(kind):
    if kind == "sequential":  # the hard case for FNV-1a alone: ids differing in their last characters
        return [f"v1.{i}" for i in range(N)]
    rng = random.Random(20261123)  # SDK-like ids: "v1." and 16 random base-36 characters
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return ["v1." + "".join(rng.choice(alphabet) for _ in range(16)) for _ in range(N)]


@pytest.fixture(scope="module", params=["sequential", "random"])
def ids(request):
    return _ids(request.param)


def _campaign(seed, weights, traffic=1):
    return {"seed": seed, "traffic": traffic,
            "variations": [{"key": str(i), "weight": w} for i, w in enumerate(weights)]}


def _assign(campaign, ids):
    return [(v and v["key"]) for v in (choose_variation(campaign, hash(campaign["seed"], i)) for i in ids)]


def _goodness_of_fit(observed, expected):
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def _contingency(pairs):
    """Chi-square statistic and degrees of freedom of the independence test on (row, column) pairs."""
    cells = Counter(pairs)
    rows = Counter(r for r, _ in pairs)
    cols = Counter(c for _, c in pairs)
    total = len(pairs)
    stat = sum((cells.get((r, c), 0) - rows[r] * cols[c] / total) ** 2 / (rows[r] * cols[c] / total)
               for r in rows for c in cols)
    return stat, (len(rows) - 1) * (len(cols) - 1)


def test_raw_hash_is_uniform_over_100_bins(ids):
    observed = Counter(int(hash("hero-newsletter", i) * 100) for i in ids)
    stat = _goodness_of_fit(observed, {k: N / 100 for k in range(100)})
    assert stat < CRITICAL_P001[99], stat


def test_four_equal_variations(ids):
    observed = Counter(_assign(_campaign("hero-newsletter", [0.25] * 4), ids))
    stat = _goodness_of_fit(observed, {str(k): N / 4 for k in range(4)})
    assert stat < CRITICAL_P001[3], (stat, observed)


def test_ninety_ten_weights(ids):
    observed = Counter(_assign(_campaign("checkout-banner", [0.9, 0.1]), ids))
    stat = _goodness_of_fit(observed, {"0": 0.9 * N, "1": 0.1 * N})
    assert stat < CRITICAL_P001[1], (stat, observed)


def test_partial_traffic_splits_the_inside_share_evenly(ids):
    observed = Counter(_assign(_campaign("footer", [0.5, 0.5], traffic=0.3), ids))
    stat = _goodness_of_fit(observed, {None: 0.7 * N, "0": 0.15 * N, "1": 0.15 * N})
    assert stat < CRITICAL_P001[2], (stat, observed)


def test_two_campaigns_assign_independently(ids):
    first = _assign(_campaign("hero-newsletter", [0.25] * 4), ids)
    second = _assign(_campaign("checkout-banner", [0.5, 0.3, 0.2]), ids)
    stat, df = _contingency(list(zip(first, second)))
    assert df == 6
    assert stat < CRITICAL_P001[df], stat


def test_holdout_is_independent_of_campaign_assignment(ids):
    held = [hash("holdout:shop", i) < 0.05 for i in ids]
    variation = _assign(_campaign("hero-newsletter", [0.25] * 4), ids)
    stat, df = _contingency(list(zip(held, variation)))
    assert df == 3
    assert stat < CRITICAL_P001[df], stat
    share = sum(held) / N
    assert abs(share - 0.05) < 0.005, share
