"""Methods under test: a method judged the way the paper judges its methods.

``pytest claims/ -m quick --method=NAME`` (repeatable; a registered name, ``module:Class``, or an
``imbalance_claims.methods`` entry point) runs, on every methods arm whose model the method
applies to, four claims about its balanced test error (the paper's headline metric):

1. it beats ERM at every imbalanced train ratio of the arm;
2. it beats random oversampling (the paper's main baseline) there;
3. it beats the strongest baseline of the zoo there (the zoo member with the lowest mean
   balanced test error over the arm's imbalanced ratios, chosen on the same seeds: the choice
   favours the baseline, so the test is conservative for the method);
4. it is non-inferior to ERM on a balanced training set (r = 1), margin 0.02.

Protocol: the arm's ratio grid (``harness.experiments.protocols.METHOD_ARMS``), five seeds; every method at a
seed trains on the same training subset and is tested on the same test sets, so comparisons are
paired by seed. Without ``--method``, the module runs the zoo's baselines themselves
(``harness.methods.zoo()``, the methods that declare ``zoo = True``: logit adjustment, the logit-adjusted loss, balanced softmax, LDAM-DRW,
focal loss, class-balanced weights; SMOTE and undersampling for XGBoost) at the imbalanced
ratios, so the report places the paper's claims beside the methods people use. A zoo baseline's
verdicts are measurements for the report, not claims of the paper: without ``--method`` its
tests are marked xfail (raising only the claim's own not-supported error, so a crash stays red)
and one that holds shows as XPASS; ``--method=focal`` makes the same tests hard claims. The zoo
is measured on claims 1 and 2 only (:data:`ZOO_MEASURES`): no item is collected for what could
never run, and a member a profile leaves out (``ZOO_LEFT_OUT``) is named, with the reason, in
the report's zoo section rather than as skipped items.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import methods
from harness.learners import models
from harness.judging import stats
from harness.judging.stats import Rule, declare_outcomes
from harness.experiments.protocols import (METHOD_ARMS, ZOO_LEFT_OUT, balanced_test_error,
                                           method_arms, per_seed)
from harness.judging.report import line_figure, mean_series

TAKEAWAY = "M"
ALPHA = 0.05
NON_INFERIORITY_MARGIN = 0.02  # balanced test error at r = 1: at most 2 points worse than ERM
ZOO_REPORT_ONLY = ("a zoo baseline measured for the report (no --method given): its verdict is "
                   "data beside the paper's claims, not a claim the suite asserts; pass "
                   "--method=NAME to assert it")


# The claims the zoo's own members are measured on without --method. The other two are only for
# methods under test: among the zoo's members all but one would fail "beats the strongest
# baseline of the zoo" by construction, and the zoo trains no runs at r = 1 for "non-inferior at
# balance". Without --method those two tests get no items at all, rather than items that always
# skip.
ZOO_MEASURES = ("test_method_beats_erm_under_imbalance", "test_method_beats_oversampling")
# The claim that carries the one skipped item of a --method that applies to no methods arm.
FIRST_CLAIM = "test_method_beats_erm_under_imbalance"


def pytest_generate_tests(metafunc):
    """(profile, arm, method) triples of this test function: in each profile, each method under
    test on each methods arm of that profile whose model it applies to; without --method, each
    zoo member on the arms that train it, for the claims the zoo is measured on
    (:data:`ZOO_MEASURES`), and nothing for the others. A method under test that applies to no
    arm of a profile gets one skipped item (on :data:`FIRST_CLAIM`) saying why. Parametrizing
    ``profile`` here replaces the plugin's profile fixture, since the arms differ by profile
    (the full zoo has members the quick one leaves out)."""
    if "method_under_test" not in metafunc.fixturenames:
        return
    # The plugin checked every --method when the session was configured (a usage error if not).
    under_test = list(dict.fromkeys(methods.resolve(ref).name
                                    for ref in metafunc.config.getoption("--method")))
    name = metafunc.function.__name__
    triples = []
    for profile in METHOD_ARMS:
        arms = method_arms(profile)
        if under_test:
            triples += [t for m in under_test for t in method_triples(profile, arms, m, name)]
        elif name in ZOO_MEASURES:
            triples += [t for m in methods.zoo() for t in zoo_triples(profile, arms, m)]
    # Parametrized over nothing (a claim the zoo is not measured on, without --method), pytest
    # makes one item that always skips; the plugin leaves such items out at collection.
    metafunc.parametrize("profile,arm,method_under_test", triples)


def method_triples(profile: str, arms: dict, name: str, test: str) -> list:
    """A method under test on each arm of ``profile`` whose model it applies to; when none does,
    one skipped item on :data:`FIRST_CLAIM` naming what it needs and what the models have."""
    mark = getattr(pytest.mark, profile)  # each profile's marker is its name
    cls = methods.get(name)
    fitting = [arm for arm, cfg in arms.items() if models.can_train(cfg.model, cls)]
    if fitting:
        return [pytest.param(profile, arm, name, marks=mark, id=f"{arm}-{name}-{profile}")
                for arm in fitting]
    if test != FIRST_CLAIM:
        return []
    why = (f"method {name!r} applies to no methods arm of the {profile} profile: it needs "
           f"{sorted(cls.requires)}, and the arms' models have " + "; ".join(
               f"{c.model}: {sorted(models.capabilities(c.model))}" for c in arms.values()))
    return [pytest.param(profile, "none", name, id=f"none-{name}-{profile}",
                         marks=[mark, pytest.mark.skip(reason=why)])]


def zoo_triples(profile: str, arms: dict, name: str) -> list:
    """A zoo member on each arm of ``profile`` that trains it (its grid lists it). A member no
    arm trains is left out on purpose, with the reason in ``ZOO_LEFT_OUT`` (which the report's
    zoo section shows); one left out without a reason is a collection error, since a reader
    would never learn it is missing."""
    fitting = [arm for arm, cfg in arms.items() if name in cfg.methods]
    left_out = {m for members in ZOO_LEFT_OUT.get(profile, {}).values() for m in members}
    if not fitting and name not in left_out:
        raise ValueError(f"zoo member {name!r} is trained on no methods arm of the {profile} "
                         "profile, and harness.experiments.protocols.ZOO_LEFT_OUT does not say why")
    return [pytest.param(profile, arm, name, marks=getattr(pytest.mark, profile),
                         id=f"{arm}-{name}-{profile}") for arm in fitting]


def imbalanced(cfg) -> list[float]:
    return [r for r in cfg.train_ratios if r < 1]


def strongest_baseline(cfg, records, seeds, exclude: str) -> str:
    """The zoo member of this arm (not ``exclude``) with the lowest mean balanced test error over
    the imbalanced ratios."""
    members = set(methods.zoo())
    zoo = [m for m in cfg.methods if m in members and m != exclude]
    return min(zoo, key=lambda m: np.mean([per_seed(records, (m, r), seeds, balanced_test_error)
                                           for r in imbalanced(cfg)]))


def error_figure(arm, cfg, records, seeds) -> dict:
    """Balanced test error vs train ratio of every method of the arm (one figure per arm)."""
    series, members = [], set(methods.zoo())
    for m in cfg.methods:
        ratios = [r for r in cfg.train_ratios if (m, r, seeds[0]) in records]
        series.append(mean_series(m, ratios, [per_seed(records, (m, r), seeds, balanced_test_error)
                                              for r in ratios],
                                  linestyle=":" if m in members else "-"))
    return line_figure(f"methods-{arm}", f"Balanced test error vs train imbalance, {cfg.model} on "
                       f"{cfg.dataset}", "train imbalance ratio", "balanced test error", series,
                       caption="Mean ± 1 SE over seeds; the zoo's baselines dotted, ERM, "
                               "oversampling and the methods under test solid.")


def lower_error_family(records, seeds, ratios, baseline: str, method: str, what: str, rule):
    """Paired one-sided t per ratio of H1: error(baseline) - error(method) > 0, Holm over ratios
    (the claim's declared ``rule``)."""
    values = {r: {baseline: per_seed(records, (baseline, r), seeds, balanced_test_error),
                  method: per_seed(records, (method, r), seeds, balanced_test_error)} for r in ratios}
    tests = {f"train r={r:g}: {baseline} minus {method}": stats.paired_greater(
        v[baseline], v[method], ALPHA, rule=rule) for r, v in values.items()}
    return stats.family_verdict(
        tests, ALPHA, f"paired one-sided t on balanced test error ({what} minus {method}), Holm "
        "over the imbalanced train ratios", seeds, {f"r={r:g}": v for r, v in values.items()},
        summary=f"mean balanced test error {baseline}/{method}: " + ", ".join(
            f"r={r:g}: {np.mean(v[baseline]):.4f}/{np.mean(v[method]):.4f}" for r, v in values.items()),
        effect_unit=f"balanced test error, {what} minus {method} (> 0 supports)")


def judged(claim, suite, arm, method):
    """The arm's records with the method under test in its grid, and the xfail of a zoo run."""
    if not suite.methods_under_test:
        claim.report_only(ZOO_REPORT_ONLY)
    return claim.grid(arm)


def conclude(claim, arm, cfg, records, seeds, method, verdict):
    claim.conclude(TAKEAWAY, arm, verdict, [error_figure(arm, cfg, records, seeds)],
                   [records[k] for k in records if k[0] in ("erm", "oversample", method)])
    claim.method = method
    claim.assert_supported()


BEATS_ERM = Rule("balanced test error(ERM) - balanced test error(method), each imbalanced r")
BEATS_OVERSAMPLING = Rule("balanced test error(oversampling) - balanced test error(method), each "
                          "imbalanced r")
BEATS_STRONGEST = Rule("balanced test error(strongest zoo baseline) - balanced test error(method), "
                       "each imbalanced r")
NON_INFERIOR = Rule("balanced test error(method) - balanced test error(ERM) at r = 1", "less",
                    NON_INFERIORITY_MARGIN)


@declare_outcomes(BEATS_ERM, alpha=ALPHA)
def test_method_beats_erm_under_imbalance(profile, arm, method_under_test, suite, claim):
    """Methods under test, claim 1: the method lowers balanced test error below ERM's when the
    training set is imbalanced (the claim every long-tail method makes; the paper's Figure 5
    asks it of oversampling, re-weighting and overfitting).

    Statistic: for every imbalanced train ratio of the arm, a paired one-sided t-test over seeds
    of H1: balanced test error(ERM) - balanced test error(method) > 0. Holm over ratios,
    alpha = 0.05.
    """
    cfg, records = judged(claim, suite, arm, method_under_test)
    verdict = lower_error_family(records, claim.seeds, imbalanced(cfg), "erm", method_under_test, "ERM",
                                 BEATS_ERM)
    conclude(claim, arm, cfg, records, claim.seeds, method_under_test, verdict)


@declare_outcomes(BEATS_OVERSAMPLING, alpha=ALPHA)
def test_method_beats_oversampling(profile, arm, method_under_test, suite, claim):
    """Methods under test, claim 2: the method lowers balanced test error below random
    oversampling's, the paper's main baseline (Figure 5), under imbalance.

    Statistic: for every imbalanced train ratio of the arm, a paired one-sided t-test over seeds
    of H1: balanced test error(oversampling) - balanced test error(method) > 0. Holm over ratios,
    alpha = 0.05.
    """
    cfg, records = judged(claim, suite, arm, method_under_test)
    verdict = lower_error_family(records, claim.seeds, imbalanced(cfg), "oversample",
                                 method_under_test, "oversampling", BEATS_OVERSAMPLING)
    conclude(claim, arm, cfg, records, claim.seeds, method_under_test, verdict)


@declare_outcomes(BEATS_STRONGEST, alpha=ALPHA)
def test_method_beats_the_strongest_baseline(profile, arm, method_under_test, suite, claim):
    """Methods under test, claim 3: the method lowers balanced test error below the strongest
    baseline of the zoo under imbalance.

    Statistic: the strongest baseline is the zoo member of the arm (the method itself excluded)
    with the lowest mean balanced test error over the imbalanced ratios, chosen on these seeds
    (which favours the baseline). For every imbalanced ratio, a paired one-sided t-test of H1:
    error(strongest) - error(method) > 0; Holm over ratios, alpha = 0.05. Only for methods given
    with --method: among the zoo's own members all but one would fail by construction.
    """
    cfg, records = judged(claim, suite, arm, method_under_test)
    best = strongest_baseline(cfg, records, claim.seeds, method_under_test)
    verdict = lower_error_family(records, claim.seeds, imbalanced(cfg), best, method_under_test,
                                 f"the strongest baseline ({best})", BEATS_STRONGEST)
    conclude(claim, arm, cfg, records, claim.seeds, method_under_test, verdict)


@declare_outcomes(NON_INFERIOR, alpha=ALPHA)
def test_method_is_non_inferior_at_balance(profile, arm, method_under_test, suite, claim):
    """Methods under test, claim 4: on a balanced training set (r = 1) the method is no worse
    than ERM (an imbalance method should not cost accuracy where there is no imbalance).

    Statistic: a paired one-sided t-test over seeds of H1: balanced test error(method) -
    balanced test error(ERM) < 0.02 (non-inferiority margin 2 points), alpha = 0.05 (one test,
    no correction). Only for methods given with --method (the zoo runs at the imbalanced ratios only).
    """
    cfg, records = judged(claim, suite, arm, method_under_test)
    m = method_under_test
    values = {"erm": per_seed(records, ("erm", 1.0), claim.seeds, balanced_test_error),
              m: per_seed(records, (m, 1.0), claim.seeds, balanced_test_error)}
    test = stats.paired_less(values[m], values["erm"], ALPHA, margin=NON_INFERIORITY_MARGIN,
                             rule=NON_INFERIOR)
    verdict = stats.family_verdict(
        {f"train r=1: {m} minus ERM": test}, ALPHA,
        f"paired one-sided t on balanced test error ({m} minus ERM) < {NON_INFERIORITY_MARGIN} "
        "(non-inferiority), r = 1", claim.seeds, {"r=1": values},
        summary=f"mean balanced test error at r=1 ERM/{m}: {np.mean(values['erm']):.4f}/"
                f"{np.mean(values[m]):.4f}",
        effect_unit=f"balanced test error, {m} minus ERM (< {NON_INFERIORITY_MARGIN} supports)")
    conclude(claim, arm, cfg, records, claim.seeds, m, verdict)
