"""Group-sequential seeds (harness.judging.sequential): the published boundaries, and the error
rates of the whole rule by simulation.

Two layers. The vectorized simulations (``SEQUENCES`` = 20,000 sequences each) apply the design's
boundaries with Holm's sequential step-down to numpy paired t p-values: type I under the null
for a single comparison, a Holm family and TOST at its margin, and "refuted" under the claim's
own effect. The end-to-end simulations push fewer sequences through the code the suite runs
(``stats.paired_greater`` / ``tost_paired`` -> ``family_verdict`` -> ``decide``, futility
included): they check that code agrees with the vectorized rule, its power at the fixed
5-seed design's minimal detectable effect, and its expected seeds.

Spreads: per-seed standard deviations of paired differences are drawn log-uniformly over
0.001-0.1, the range of test-error differences the suite records (its comparisons' CIs at 5 seeds
imply 0.009-0.02 on a quick run); the t statistic is scale-free, so any spread gives the same
rates, and drawing them exercises the code over the suite's range.
"""

import math

import numpy as np
import pytest
from scipy import stats

from harness.judging import sequential
from harness.judging import stats as claim_stats
from harness.judging.sequential import Design

SEQUENCES = 20_000
END_TO_END = 1_500
ALPHA = 0.05
LOOKS = (5, 10, 20, 40, 80)   # a tabular or toy arm's design (at most 80 seeds)
NETWORK_LOOKS = (5, 10, 20)   # a network arm's: its first look spends more, on t with 4 df
DESIGNS = pytest.mark.parametrize("looks", [LOOKS, NETWORK_LOOKS], ids=["to-80", "to-20"])
SEED = 20261201


def mc_limit(rate: float, sequences: int = SEQUENCES) -> float:
    """``rate`` plus three Monte Carlo standard errors."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / sequences)


def spreads(rng, shape) -> np.ndarray:
    return np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), size=shape))


def one_sided_p(x: np.ndarray, n: int, shift: float = 0.0, greater: bool = True) -> np.ndarray:
    """Paired one-sided t p-values of H1: mean > shift (or < shift) on the first ``n`` seeds
    (the last axis)."""
    y = x[..., :n] - shift
    t = y.mean(-1) / (y.std(-1, ddof=1) / np.sqrt(n))
    return stats.t.sf(t, n - 1) if greater else stats.t.cdf(t, n - 1)


def crossed(p_by_look, design: Design) -> np.ndarray:
    """Whether each sequence's family (p arrays of shape (sequences, m) per look) is rejected
    whole by the sequential Holm step-down at some look."""
    hit = np.zeros(p_by_look[0].shape[0], dtype=bool)
    for k, p in enumerate(p_by_look):
        m = p.shape[1]
        ordered = np.sort(p, axis=1)
        levels = np.array([design.level(k, 1 / (m - j)) for j in range(m)])
        hit |= (ordered < levels).all(axis=1)
    return hit


def any_crossed(p_by_look, design: Design) -> np.ndarray:
    """Whether the step-down rejects at least one comparison at some look (Holm's first step)."""
    hit = np.zeros(p_by_look[0].shape[0], dtype=bool)
    for k, p in enumerate(p_by_look):
        hit |= p.min(axis=1) < design.level(k, 1 / p.shape[1])
    return hit


def mde_5(alpha=ALPHA, power=0.8) -> float:
    """The fixed 5-seed design's minimal detectable effect, in units of the per-seed spread."""
    return claim_stats.detectable_factor(5, alpha, power) / math.sqrt(5)


# ---------------------------------------------------------------------------- the boundaries

def test_obrien_fleming_bounds_are_gsdesigns_published_ones():
    """gsDesign's sfLDOF, one-sided alpha = 0.025, five equally spaced looks."""
    design = Design(looks=(2, 4, 6, 8, 10), alpha=0.025)
    assert design.bounds == pytest.approx((4.877, 3.357, 2.680, 2.290, 2.031), abs=1e-3)
    assert design.spent[-1] == pytest.approx(0.025)


def test_looks_double_from_five_to_the_maximum():
    assert sequential.doubling_looks(80) == (5, 10, 20, 40, 80)
    assert sequential.doubling_looks(20) == (5, 10, 20)
    assert sequential.doubling_looks(30) == (5, 10, 20, 30)
    assert sequential.doubling_looks(5) == (5,)
    with pytest.raises(ValueError, match="below its first look"):
        sequential.doubling_looks(3)


def test_bad_designs_are_refused():
    for bad, match in [({"looks": (5, 5)}, "increase"), ({"looks": (1, 4)}, "increase"),
                       ({"alpha": 0.7}, "alpha")]:
        with pytest.raises(ValueError, match=match):
            Design(**bad)


def test_a_single_look_design_is_the_fixed_test():
    assert Design(looks=(5,), alpha=ALPHA).nominal_levels[0] == pytest.approx(ALPHA, rel=1e-9)


# ---------------------------------------------------------------------------- error rates

@DESIGNS
def test_the_design_keeps_alpha_under_the_null_and_hand_made_optional_stopping_does_not(looks):
    """The mutation test of the issue: re-judging at every look with the fixed-n test (alpha =
    0.05 each time) exceeds alpha; the design does not."""
    design = Design(looks, ALPHA)
    rng = np.random.default_rng(SEED)
    diffs = rng.normal(0.0, spreads(rng, (SEQUENCES, 1)), size=(SEQUENCES, looks[-1]))
    p = [one_sided_p(diffs, n)[:, None] for n in looks]
    rate = crossed(p, design).mean()
    assert rate <= mc_limit(ALPHA)
    naive = np.zeros(SEQUENCES, dtype=bool)
    for pk in p:
        naive |= pk[:, 0] < ALPHA
    assert naive.mean() > mc_limit(ALPHA)  # optional stopping by hand: about 0.16 (0.11 to 20)
    assert naive.mean() > 1.5 * rate


@DESIGNS
@pytest.mark.parametrize("true_nulls", [3, 1])
def test_holm_within_a_family_keeps_the_family_s_error_rates(true_nulls, looks):
    """A family of three comparisons. With every null true, "supported" (all must reject) and
    "some comparison rejected" (what a refutation needs, Holm's first step) stay within alpha.
    With one true null and two comparisons far from theirs, the family is supported only if the
    true null is rejected: still within alpha."""
    design = Design(looks, ALPHA)
    rng = np.random.default_rng(SEED + true_nulls)
    m = 3
    effects = np.array([0.0] * true_nulls + [2.0] * (m - true_nulls))  # in spreads
    sd = spreads(rng, (SEQUENCES, m, 1))
    diffs = rng.normal(effects[None, :, None] * sd, sd, size=(SEQUENCES, m, looks[-1]))
    p = [one_sided_p(diffs, n) for n in looks]
    assert crossed(p, design).mean() <= mc_limit(ALPHA)
    if true_nulls == m:
        assert any_crossed(p, design).mean() <= mc_limit(ALPHA)


@DESIGNS
def test_tost_at_its_margin_is_not_shown_equivalent_more_than_alpha(looks):
    """A true difference exactly at the equivalence margin: TOST's p (the larger of its two
    one-sided p-values) crosses the boundary at some look with rate at most alpha."""
    design = Design(looks, ALPHA)
    rng = np.random.default_rng(SEED + 10)
    sd = spreads(rng, (SEQUENCES, 1))
    margin = 0.5 * sd
    diffs = rng.normal(margin, sd, size=(SEQUENCES, looks[-1]))
    p = [np.maximum(one_sided_p(diffs, n, -margin, True), one_sided_p(diffs, n, margin, False))[:, None]
         for n in looks]
    assert crossed(p, design).mean() <= mc_limit(ALPHA)


@DESIGNS
def test_refuted_under_the_claim_s_own_effect_at_most_alpha(looks):
    """The claim's effect exactly at its null value (the least favourable case for refuting it):
    the refuting test crosses its boundary at some look with rate at most alpha."""
    design = Design(looks, ALPHA)
    rng = np.random.default_rng(SEED + 11)
    diffs = rng.normal(0.0, spreads(rng, (SEQUENCES, 1)), size=(SEQUENCES, looks[-1]))
    p = [one_sided_p(diffs, n, greater=False)[:, None] for n in looks]
    assert crossed(p, design).mean() <= mc_limit(ALPHA)


# ---------------------------------------------------------------------------- the real code path

def run_sequence(diffs: np.ndarray, design: Design, tost_margin: float | None = None):
    """Judge one sequence of per-seed paired differences (comparisons x seeds) the way the suite
    does: paired tests -> family_verdict -> decide, look by look. Returns the last look."""
    for k, n in enumerate(design.looks):
        zeros = np.zeros(n)
        tests = {f"c{i}": (claim_stats.tost_paired(d[:n], zeros, tost_margin, ALPHA)
                           if tost_margin else claim_stats.paired_greater(d[:n], zeros, ALPHA))
                 for i, d in enumerate(diffs)}
        verdict = claim_stats.family_verdict(tests, ALPHA, "sim", range(n), {})
        verdict = claim_stats.gated(verdict, {"passed": True})
        look = sequential.decide(verdict, design, k)
        if look.stops:
            return look
    raise AssertionError("the last look always stops")


def test_the_suite_s_decisions_match_the_vectorized_rule_and_keep_alpha():
    """End to end under the null, futility included: every "supported" the suite's code makes
    is one the vectorized rule makes (futility can only stop sequences earlier), every
    "refuted" one whose refuting tests crossed at Holm's first step, and both rates stay within
    alpha."""
    design = Design(LOOKS, ALPHA)
    rng = np.random.default_rng(SEED + 20)
    diffs = rng.normal(0.0, spreads(rng, (END_TO_END, 2, 1)), size=(END_TO_END, 2, LOOKS[-1]))
    looks = [run_sequence(d, design) for d in diffs]
    supported = np.array([x.decision == "supported" for x in looks])
    refuted = np.array([x.decision == "refuted" for x in looks])
    vector = crossed([one_sided_p(diffs, n) for n in LOOKS], design)
    assert not (supported & ~vector).any()
    assert not (refuted & ~any_crossed([one_sided_p(diffs, n, greater=False) for n in LOOKS], design)).any()
    assert supported.mean() <= mc_limit(ALPHA, END_TO_END)
    # Refuted: a comparison's refuting test crossed (the family's Holm first step).
    assert refuted.mean() <= mc_limit(ALPHA, END_TO_END)
    # Futility stops some null sequences before the maximum (none before their intervals
    # exclude what the maximum could detect, so most go far: the price of not stopping a real
    # effect early on a noisy estimate).
    seeds = np.array([x.n for x in looks])
    print(f"under the null: E[n] = {seeds.mean():.1f} seeds, {np.mean(seeds < LOOKS[-1]):.2f} stopped "
          "before the maximum")
    assert (seeds < LOOKS[-1]).mean() > 0.1 and all(x.decision == "futile" for x in looks if x.n < LOOKS[-1]
                                                    and x.decision not in ("supported", "refuted"))


def test_the_suite_s_rule_on_the_network_design_keeps_alpha_end_to_end():
    """The suite's code on the network arms' design (looks 5, 10, 20, where the first look's
    level meets a t-test on 4 degrees of freedom) under the null: within alpha, and every
    "supported" one the vectorized rule makes. (TOST goes through the vectorized test only: its
    futility planning integrates its power per look, ~0.5 s a call, too slow for 1,000 sequences.)"""
    design = Design(NETWORK_LOOKS, ALPHA)
    rng = np.random.default_rng(SEED + 25)
    diffs = rng.normal(0.0, spreads(rng, (END_TO_END, 1, 1)), size=(END_TO_END, 1, NETWORK_LOOKS[-1]))
    supported = np.array([run_sequence(d, design).decision == "supported" for d in diffs])
    assert not (supported & ~crossed([one_sided_p(diffs, n) for n in NETWORK_LOOKS], design)).any()
    assert supported.mean() <= mc_limit(ALPHA, END_TO_END)


def test_the_suite_s_rule_with_the_fixed_level_at_every_look_exceeds_alpha(monkeypatch):
    """The mutation test on the suite's own code: with every look held to the fixed test's
    level (optional stopping by hand: re-judging at alpha after each look), the same decisions
    support a claim with no effect far more often than alpha."""
    monkeypatch.setattr(Design, "level", lambda self, k, share=1.0: self.alpha * share)
    design = Design(LOOKS, ALPHA)
    rng = np.random.default_rng(SEED + 24)
    diffs = rng.normal(0.0, spreads(rng, (END_TO_END, 1, 1)), size=(END_TO_END, 1, LOOKS[-1]))
    supported = np.mean([run_sequence(d, design).decision == "supported" for d in diffs])
    assert supported > mc_limit(ALPHA, END_TO_END)


def test_power_at_the_five_seed_mde_is_at_least_the_fixed_design_s_and_expected_seeds_are_reported():
    """A true effect equal to the fixed 5-seed design's minimal detectable effect (80% power
    there): the sequential design, futility included, supports it at least as often, and its
    expected number of seeds is finite and reported (printed with -s)."""
    design = Design(LOOKS, ALPHA)
    rng = np.random.default_rng(SEED + 21)
    sd = spreads(rng, (END_TO_END, 1, 1))
    diffs = rng.normal(mde_5() * sd, sd, size=(END_TO_END, 1, LOOKS[-1]))
    fixed = (one_sided_p(diffs[:, 0], 5) < ALPHA).mean()
    looks = [run_sequence(d, design) for d in diffs]
    power = np.mean([x.decision == "supported" for x in looks])
    expected = np.mean([x.n for x in looks])
    print(f"power at the 5-seed MDE: fixed 5 seeds {fixed:.3f}, sequential {power:.3f} with "
          f"E[n] = {expected:.1f} seeds")
    assert fixed == pytest.approx(0.8, abs=0.04)
    assert power >= fixed
    assert 5 <= expected <= LOOKS[-1]


def test_a_strong_effect_stops_early_and_a_reversed_one_is_refuted_not_continued():
    design = Design(LOOKS, ALPHA)
    rng = np.random.default_rng(SEED + 22)
    strong = rng.normal(1.0, 0.2, size=(1, LOOKS[-1]))
    assert run_sequence(strong, design).decision == "supported"
    assert run_sequence(strong, design).n <= 10
    reversed_ = rng.normal(-1.0, 1.0, size=(1, LOOKS[-1]))
    look = run_sequence(reversed_, design)
    assert look.decision == "refuted", look


def test_zero_spread_stops_for_futility_and_never_supports():
    design = Design(LOOKS, ALPHA)
    same = np.full((1, LOOKS[-1]), 0.01)
    look = run_sequence(same, design)
    assert look.decision == "futile" and look.n == 5 and "zero spread" in look.why


def test_a_failed_gate_stops_the_claim_whatever_its_p():
    design = Design(LOOKS, ALPHA)
    tests = {"c": claim_stats.paired_greater(np.arange(1, 6) + 10.0, np.zeros(5), ALPHA)}
    verdict = claim_stats.gated(claim_stats.family_verdict(tests, ALPHA, "s", range(5), {}),
                                {"passed": False, "summary": "no"})
    look = sequential.decide(verdict, design, 0)
    assert look.decision == "futile"


def test_judged_records_the_design_and_every_look():
    design = Design((5, 10), ALPHA)
    rng = np.random.default_rng(SEED + 23)
    d = rng.normal(0.3, 1.0, size=10)
    history = sequential.History(design)
    for k, n in enumerate(design.looks):
        verdict = claim_stats.gated(claim_stats.family_verdict(
            {"c": claim_stats.paired_greater(d[:n], np.zeros(n), ALPHA)}, ALPHA, "s", range(n), {}),
            {"passed": True})
        history.looks.append(sequential.decide(verdict, design, k))
        if history.stopped:
            break
    final = sequential.judged(verdict, history)
    record = final.sequential
    assert record["design"]["looks"] == [5, 10] and record["stopped_at"] == history.looks[-1].n
    assert [x["n"] for x in record["looks"]] == [x.n for x in history.looks]
    assert final.outcome in ("supported", "refuted", "inconclusive")
    assert (final.outcome == "supported") == final.supported
    assert "group-sequential" in final.statistic
