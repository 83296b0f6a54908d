"""Statistics against textbook and reference values (computed independently, e.g. with SciPy)."""
import math

import pytest

from server.results.stats import (
    chi2_sf,
    compare_proportions,
    srm_check,
    t_quantile,
    t_sf,
    welch,
)


@pytest.mark.parametrize("x, df, expected", [
    (3.841458820694124, 1, 0.05),      # the textbook 5% critical values
    (5.991464547107979, 2, 0.05),
    (11.070497693516351, 5, 0.05),
    (6.6348966010212145, 1, 0.01),
    (0.5, 3, 0.9188914116546758),
    (100.0, 4, 9.836624224615988e-21),
    (0.0, 2, 1.0),
])
def test_chi_square_survival(x, df, expected):
    assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("t, df, expected", [
    (2.0, 5, 0.050969739414929174),
    (1.5, 30, 0.072032964564323),
    (-1.0, 3, 0.8044988905221148),
    (2.2281388519862744, 10, 0.025),  # t(0.975, 10) from the tables
])
def test_student_t_survival(t, df, expected):
    assert t_sf(t, df) == pytest.approx(expected, rel=1e-9)


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959966, abs=1e-5)


def test_two_proportion_test():
    # 36/1200 vs 52/1187: pooled z = 1.7900, two-sided p = 0.07345
    result = compare_proportions(36, 1200, 52, 1187)
    assert result["p_value"] == pytest.approx(0.07344955562495763, abs=1e-6)
    assert result["uplift"] == pytest.approx((52 / 1187) / (36 / 1200) - 1, abs=1e-6)
    low, high = result["ci"]
    assert low < result["uplift"] < high and low < 0 < high  # not significant at 5%: CI spans 0


def test_two_proportion_test_significant_difference():
    result = compare_proportions(100, 2000, 160, 2000)
    assert result["p_value"] < 0.001
    assert result["ci"][0] > 0


def test_two_proportion_undefined_cases():
    assert compare_proportions(0, 0, 1, 10) == {"uplift": None, "ci": None, "p_value": None}
    assert compare_proportions(0, 10, 0, 10)["p_value"] is None


def test_welch_matches_the_textbook_example():
    # Welch's t-test example (two samples of 15): t = -2.4554, df = 24.99, p = 0.02138
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    result = welch(sum(a), sum(x * x for x in a), len(a), sum(b), sum(x * x for x in b), len(b))
    assert result["p_value"] == pytest.approx(0.021378001462866992, abs=1e-6)
    assert result["uplift"] == pytest.approx(sum(b) / sum(a) - 1, abs=1e-6)
    assert 0 < result["ci"][0] < result["uplift"] < result["ci"][1]


def test_srm_flags_a_broken_split_only():
    assert srm_check([5000, 5050], [0.5, 0.5])["ok"] is True
    broken = srm_check([5000, 5500], [0.5, 0.5])
    assert broken["ok"] is False and broken["p_value"] < 0.001
    assert srm_check([1200, 1100], [0.5, 0.5])["p_value"] == pytest.approx(0.03705621856411898, abs=1e-6)
    assert srm_check([0, 0], [0.5, 0.5]) == {"p_value": None, "ok": True}
    assert not math.isnan(srm_check([9000, 1000], [0.9, 0.1])["p_value"])


@pytest.mark.parametrize("a, b", [([5e-324, 0.0, 5e-324], [1.0, 2.0, 0.0]), ([1e-170, 0.0], [1e-170, 3e-170]),
                                  ([0.0, 0.0, 1e-300], [5e-324, 5e-324, 0.0])])
def test_welch_on_revenues_too_small_to_square_gives_nones_not_an_error(a, b):
    # Found by the fuzz test against the real server: values of 5e-324 made results a 500.
    result = welch(sum(a), sum(x * x for x in a), len(a), sum(b), sum(x * x for x in b), len(b))
    for figure in (result["uplift"], result["p_value"], *(result["ci"] or [])):
        assert figure is None or math.isfinite(figure)
