"""Results' statistics against independent oracles: statsmodels' log-ratio test of two proportions,
GrowthBook's gbstats (the same confidence sequence, Bayesian normal approximation, ratio and CUPED
statistics), scipy's Welch test, exact Beta-binomial sums, Monte Carlo; and the properties the
issue asked for, attacked with Hypothesis: an interval and its p-value never disagree, an uplift
interval never goes below -100%, and an A/A experiment looked at daily stays within its level."""
import math

import numpy as np
import pytest
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep
from statsmodels.stats.proportion import (
    test_proportions_2indep as proportions_test_2indep,
)

from server.results import sample_size as planning
from server.results import stats
from server.results.sample_size import sample_size
from tests.simulation import aa_false_positive_rates

REL = 1e-9


@pytest.mark.parametrize("k_a, n_a, k_b, n_b", [
    (36, 1200, 52, 1187), (360, 12000, 452, 11870), (5, 100, 9, 100), (1000, 5000, 1020, 5000),
    (26301, 65803, 30216, 65957), (40, 100, 12, 100),
])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_fixed_rates_are_statsmodels_log_ratio_test(k_a, n_a, k_b, n_b, alpha):
    result = stats.compare(stats.rate(k_a, n_a), stats.rate(k_b, n_b), "fixed", alpha)
    low, high = confint_proportions_2indep(k_b, n_b, k_a, n_a, method="log", compare="ratio", alpha=alpha)
    p_value = proportions_test_2indep(k_b, n_b, k_a, n_a, method="log", compare="ratio").pvalue
    assert result["uplift"] == pytest.approx((k_b / n_b) / (k_a / n_a) - 1, rel=REL)
    assert result["ci"] == pytest.approx([low - 1, high - 1], rel=REL)
    assert result["p_value"] == pytest.approx(p_value, rel=1e-7)


def _gb_mean(n, total, total_sq):
    return SampleMeanStatistic(n=n, sum=total, sum_squares=total_sq)


MEANS = [  # (n, sum, sum of squares) of a baseline and a variation: revenue per visitor
    ((1000, 5000.0, 90000.0), (1000, 5600.0, 99000.0)),
    ((5000, 30000.0, 2.1e6), (4900, 33000.0, 2.5e6)),
    ((150, 600.0, 30000.0), (170, 500.0, 21000.0)),
]


@pytest.mark.parametrize("a, b", MEANS)
def test_fixed_interval_is_gbstats_welch_t_test(a, b):
    """The same Wald/Welch machinery as gbstats' TwoSidedTTest (there on the absolute difference),
    and as scipy's Welch t-test."""
    test = TwoSidedTTest(_gb_mean(*a), _gb_mean(*b), FrequentistConfig(difference_type="absolute"))
    expected = test.compute_result()
    low, high, p_value = stats.fixed_interval(test.point_estimate, test.variance, 0.05, test.dof)
    assert [low, high] == pytest.approx(expected.ci, rel=REL)
    assert p_value == pytest.approx(expected.p_value, rel=1e-7)
    mean_a, mean_b = stats.mean(*a[1:], a[0]), stats.mean(*b[1:], b[0])
    welch = scipy_stats.ttest_ind_from_stats(mean_b.mean, math.sqrt(mean_b.variance * b[0]), b[0],
                                             mean_a.mean, math.sqrt(mean_a.variance * a[0]), a[0], equal_var=False)
    assert p_value == pytest.approx(welch.pvalue, rel=1e-7)


@pytest.mark.parametrize("a, b", MEANS)
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_sequential_interval_is_gbstats_confidence_sequence(a, b, alpha):
    test = SequentialTwoSidedTTest(_gb_mean(*a), _gb_mean(*b), SequentialConfig(difference_type="absolute", alpha=alpha))
    expected = test.compute_result()
    low, high, p_value = stats.sequential_interval(test.point_estimate, test.variance, a[0] + b[0], alpha)
    assert [low, high] == pytest.approx(expected.ci, rel=REL)
    assert p_value == pytest.approx(expected.p_value, rel=REL)


@pytest.mark.parametrize("a, b", MEANS + [((2000, 900.0, 900.0), (2000, 1010.0, 1010.0))])
def test_bayesian_normal_is_gbstats_relative_effect_test(a, b):
    expected = EffectBayesianABTest(_gb_mean(*a), _gb_mean(*b), EffectBayesianConfig(difference_type="relative")).compute_result()
    result = stats.bayes_normal(stats.mean(*a[1:], a[0]), stats.mean(*b[1:], b[0]))
    assert result["chance_to_win"] == pytest.approx(expected.chance_to_win, rel=1e-9, abs=1e-12)
    assert result["expected_loss"] == pytest.approx(expected.risk[1], rel=1e-7, abs=1e-12)


def _exact_chance_to_win(k_a, n_a, k_b, n_b):
    """P(B > A) for Beta(1 + k, 1 + n - k) posteriors as an exact finite sum (Evan Miller, 2015)."""
    a_a, b_a, a_b, b_b = 1 + k_a, 1 + n_a - k_a, 1 + k_b, 1 + n_b - k_b
    i = np.arange(a_b)
    return float(np.exp(special.betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - special.betaln(1 + i, b_b)
                        - special.betaln(a_a, b_a)).sum())


@pytest.mark.parametrize("k_a, n_a, k_b, n_b", [
    (360, 12000, 452, 11870), (452, 11870, 360, 12000), (20, 200, 360, 12000), (5, 100, 9, 100),
    (1000, 5000, 1020, 5000), (3, 100000, 40, 5000), (99, 100, 100, 100), (0, 100, 5, 100), (0, 100, 0, 100),
])
def test_beta_binomial_chance_to_win_is_the_exact_sum(k_a, n_a, k_b, n_b):
    assert stats.bayes_rates(k_a, n_a, k_b, n_b)["chance_to_win"] == pytest.approx(
        _exact_chance_to_win(k_a, n_a, k_b, n_b), abs=1e-9)


@pytest.mark.parametrize("k_a, n_a, k_b, n_b", [(100, 1000, 105, 1000), (50, 400, 40, 420), (900, 3000, 870, 3100)])
def test_beta_binomial_expected_loss_matches_monte_carlo(k_a, n_a, k_b, n_b):
    rng = np.random.default_rng(7)
    a = rng.beta(1 + k_a, 1 + n_a - k_a, 2_000_000)
    b = rng.beta(1 + k_b, 1 + n_b - k_b, 2_000_000)
    loss = np.maximum(a - b, 0) / ((1 + k_a) / (2 + n_a))
    standard_error = loss.std() / math.sqrt(loss.size)
    assert abs(stats.bayes_rates(k_a, n_a, k_b, n_b)["expected_loss"] - loss.mean()) < 4 * standard_error


def test_average_order_value_variance_is_gbstats_ratio_statistic():
    rng = np.random.default_rng(3)
    orders = rng.poisson(0.3, 5000)
    revenue = np.array([rng.lognormal(3.5, 0.7, k).sum() for k in orders])
    sums = (revenue.sum(), (revenue**2).sum(), orders.sum(), (orders**2).sum(), (revenue * orders).sum())
    estimate = stats.ratio(*sums, orders.size)
    gb = RatioStatistic(n=orders.size, m_statistic=_gb_mean(orders.size, sums[0], sums[1]),
                        d_statistic=_gb_mean(orders.size, sums[2], sums[3]), m_d_sum_of_products=sums[4])
    assert estimate.mean == pytest.approx(gb.mean, rel=REL)
    assert estimate.variance == pytest.approx(gb.variance / orders.size, rel=1e-9)


def _visitors(rng, n, effect=0.0):
    """Synthetic visitors: pre-exposure visits and pageviews, and a revenue that grows with them."""
    visits = rng.poisson(3, n) + 1
    pageviews = visits * rng.poisson(4, n) + rng.poisson(2, n)
    revenue = np.maximum(0.0, 2.0 * visits + 0.8 * pageviews + rng.normal(0, 6, n)) * (1 + effect)
    return np.column_stack([visits, pageviews]).astype(float), revenue


def _covariates(x, y):
    return stats.Covariates(len(y), y.sum(), (y * y).sum(), tuple(x.sum(axis=0)), tuple(map(tuple, x.T @ x)),
                            tuple(x.T @ y))


def test_cuped_with_one_covariate_is_gbstats_regression_adjustment():
    rng = np.random.default_rng(11)
    (x_a, y_a), (x_b, y_b) = _visitors(rng, 3000), _visitors(rng, 3100, effect=0.05)
    adjusted = stats.cuped(_covariates(x_a[:, 1:], y_a), _covariates(x_b[:, 1:], y_b))

    def gb(x, y):
        return RegressionAdjustedStatistic(n=len(y), post_statistic=_gb_mean(len(y), y.sum(), (y * y).sum()),
                                           pre_statistic=_gb_mean(len(y), x.sum(), (x * x).sum()),
                                           post_pre_sum_of_products=(x[:, 0] * y).sum(), theta=0)
    test = TwoSidedTTest(gb(x_a[:, 1:], y_a), gb(x_b[:, 1:], y_b), FrequentistConfig(difference_type="absolute"))
    assert adjusted[1].mean - adjusted[0].mean == pytest.approx(test.point_estimate, rel=1e-9)
    assert adjusted[0].variance + adjusted[1].variance == pytest.approx(test.variance, rel=1e-9)


def test_cuped_with_two_covariates_is_the_regression_on_the_visitors_themselves():
    """Against the textbook computation on raw per-visitor data: theta by least squares over both
    arms, each visitor's y - (x - mean x) theta, that arm's mean and variance."""
    rng = np.random.default_rng(5)
    (x_a, y_a), (x_b, y_b) = _visitors(rng, 4000), _visitors(rng, 4000, effect=0.03)
    adjusted = stats.cuped(_covariates(x_a, y_a), _covariates(x_b, y_b))
    x, y = np.vstack([x_a, x_b]), np.concatenate([y_a, y_b])
    centred = x - x.mean(axis=0)
    theta = np.linalg.lstsq(np.column_stack([np.ones(len(y)), centred]), y, rcond=None)[0][1:]
    for estimate, (x_arm, y_arm) in zip(adjusted, [(x_a, y_a), (x_b, y_b)]):
        y_adjusted = y_arm - (x_arm - x.mean(axis=0)) @ theta
        assert estimate.mean == pytest.approx(y_adjusted.mean(), rel=1e-9)
        assert estimate.variance == pytest.approx(y_adjusted.var(ddof=1) / len(y_arm), rel=1e-9)
        # the point of CUPED: a much narrower estimate than the raw mean's
        assert estimate.variance < 0.5 * y_arm.var(ddof=1) / len(y_arm)


def test_cuped_without_information_in_the_covariates_is_none():
    constant = stats.Covariates(100, 50.0, 60.0, (300.0,), ((900.0,),), (150.0,))  # x = 3 for everyone
    assert stats.cuped(constant, constant) is None


def test_cuped_keeps_an_aa_experiment_at_its_level():
    """1,000 A/A experiments on synthetic visitors: the CUPED-adjusted fixed test rejects about
    alpha of them, no more (the adjustment must not manufacture significance)."""
    rng = np.random.default_rng(17)
    rejected = 0
    for _ in range(1000):
        a, b = _visitors(rng, 400), _visitors(rng, 400)
        result = stats.compare(*stats.cuped(_covariates(*a), _covariates(*b)), "fixed", 0.05, welch=True)
        rejected += result["p_value"] < 0.05
    assert rejected / 1000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)


@settings(deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_benjamini_hochberg_is_statsmodels(p_values):
    assert stats.benjamini_hochberg(p_values) == pytest.approx(list(multipletests(p_values, method="fdr_bh")[1]),
                                                               rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("observed, weights", [
    ([5000, 5050], [0.5, 0.5]), ([5000, 5500], [0.5, 0.5]), ([1200, 1100], [0.5, 0.5]), ([9000, 1000], [0.9, 0.1]),
    ([300, 330, 310], [0.2, 0.5, 0.3]), ([100, 120, 95], [0.3, 0.4, 0.3]),
])
def test_srm_is_gbstats_check(observed, weights):
    p_value, ok = stats.srm_check(observed, weights)
    assert p_value == pytest.approx(check_srm(observed, weights), rel=1e-9)
    assert ok == (p_value >= stats.SRM_ALPHA)


def test_srm_flags_a_broken_split_only():
    assert stats.srm_check([5000, 5050], [0.5, 0.5])[1] is True
    assert stats.srm_check([5000, 5500], [0.5, 0.5])[1] is False
    assert stats.srm_check([1200, 1100], [0.5, 0.5])[0] == pytest.approx(0.03705621856411898, abs=1e-9)
    assert stats.srm_check([10], [1.0]) is None
    # a variation weighted 0 is no arm of the test (gbstats would still count its degree of freedom)
    assert stats.srm_check([100, 120, 0], [0.5, 0.5, 0.0])[0] == pytest.approx(check_srm([100, 120], [0.5, 0.5]))


counts = st.integers(100, 200_000).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n)))


@settings(max_examples=300, deadline=None)
@given(counts, counts, st.sampled_from(["sequential", "fixed"]), st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_an_interval_and_its_p_value_never_disagree(a, b, mode, alpha):
    """The user's `-60.0% [-81.5%, -38.5%] p=0.104` and intervals below -100% cannot happen."""
    result = stats.compare(stats.rate(*a), stats.rate(*b), mode, alpha)
    if result is None:  # a rate of 1 in both arms: no variance to test with
        assert a[0] == a[1] and b[0] == b[1]
        return
    low, high = result["ci"]
    assert -1 < low <= result["uplift"] <= high
    p = result["p_value"]
    if not math.isclose(p, alpha, rel_tol=1e-9):  # at the boundary itself, rounding decides
        assert (low > 0 or high < 0) == (p < alpha)


@settings(max_examples=200, deadline=None)
@given(st.integers(100, 100_000), st.integers(100, 100_000), st.floats(0.01, 0.9), st.floats(0.01, 0.9),
       st.floats(1, 500), st.floats(1, 500), st.sampled_from(["sequential", "fixed"]))
def test_revenue_intervals_and_p_values_never_disagree(n_a, n_b, share_a, share_b, spend_a, spend_b, mode):
    """Per-visitor means (Welch's t in fixed mode): a share of visitors spends, each the same."""
    def arm(n, share, spend):
        buyers = max(1, round(n * share))
        return stats.mean(buyers * spend, buyers * spend * spend, n)
    result = stats.compare(arm(n_a, share_a, spend_a), arm(n_b, share_b, spend_b), mode, 0.05, welch=True)
    low, high = result["ci"]
    assert -1 < low <= result["uplift"] <= high
    if not math.isclose(result["p_value"], 0.05, rel_tol=1e-9):
        assert (low > 0 or high < 0) == (result["p_value"] < 0.05)


def test_revenue_interval_covers_the_true_ratio_at_its_level():
    """2,000 simulated experiments with skewed spending and a true uplift of +10%: the fixed
    95% interval of revenue per visitor holds the truth about 95% of the time."""
    rng = np.random.default_rng(23)
    covered = 0
    for _ in range(2000):
        arms = []
        for lift in (1.0, 1.1):
            buyers = rng.binomial(2000, 0.08)
            spend = rng.lognormal(3.8, 0.8, buyers) * lift
            arms.append(stats.mean(spend.sum(), (spend**2).sum(), 2000))
        low, high = stats.compare(*arms, "fixed", 0.05, welch=True)["ci"]
        covered += low <= 0.1 <= high
    assert abs(covered / 2000 - 0.95) < 3 * math.sqrt(0.95 * 0.05 / 2000)


def test_an_aa_experiment_looked_at_daily_stays_within_its_level(capsys):
    """1,000 A/A experiments, 30 daily looks each: the sequential mode's false-positive rate is
    within alpha; the fixed test peeked at daily is inflated (which is why sequential is the
    default), and read once it is at its level."""
    for metric in ("conversion_rate", "revenue_per_visitor"):
        rates = aa_false_positive_rates(experiments=1000, days=30, metric=metric)
        with capsys.disabled():
            print(f"\nA/A {metric}, 1,000 experiments x 30 daily looks, alpha 0.05: false positives "
                  f"sequential {rates['sequential']:.1%}, fixed peeked daily {rates['fixed_peeking']:.1%}, "
                  f"fixed read once {rates['fixed_once']:.1%}")
        noise = 3 * math.sqrt(0.05 * 0.95 / 1000)
        assert rates["sequential"] <= 0.05
        assert rates["fixed_peeking"] > 0.05 + noise
        assert abs(rates["fixed_once"] - 0.05) < noise


@pytest.mark.parametrize("baseline, mde, variations", [(0.05, 0.2, 2), (0.03, -0.15, 3), (0.3, 0.05, 2)])
def test_planned_sample_size_gives_the_planned_power(baseline, mde, variations):
    """4,000 simulated experiments at the planned visitors per arm, with the effect planned for:
    each mode's test (at the plan's share of alpha) detects it about `power` of the time."""
    plan = sample_size(baseline, mde, alpha=0.05, power=0.8, variations=variations)
    alpha = 0.05 / (variations - 1)
    rng = np.random.default_rng(29)
    for mode in ("fixed", "sequential"):
        n = plan[mode]["visitors_per_variation"]
        control = stats.rate(rng.binomial(n, baseline, 4000), n)
        variation = stats.rate(rng.binomial(n, baseline * (1 + mde), 4000), n)
        theta, variance = stats.log_ratio(control, variation)
        if mode == "fixed":
            p_values = stats.fixed_interval(theta, variance, alpha)[2]
        else:
            p_values = stats.sequential_interval(theta, variance, 2 * n, alpha)[2]
        power = np.mean(p_values < alpha)
        assert abs(power - 0.8) < 3 * math.sqrt(0.8 * 0.2 / 4000), (mode, power)


def test_sample_size_refuses_what_cannot_be_planned():
    assert planning.problems({"baseline": "0.03", "mde": "0.1"}) == []
    assert [p["path"] for p in planning.problems({"baseline": "1.5", "mde": "nan", "alpha": "0", "power": "1",
                                                   "variations": "1"})] == ["/baseline", "/mde", "/alpha", "/power",
                                                                            "/variations"]
    assert planning.problems({"baseline": "0.6", "mde": "1"}) == [
        {"path": "/mde", "message": "baseline x (1 + mde) must stay below 1"}]
    assert planning.problems({"mde": "0.1"}) == [
        {"path": "/baseline", "message": "is required: a conversion rate between 0 and 1, exclusive"}]
