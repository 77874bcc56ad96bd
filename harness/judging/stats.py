"""Statistics for claims over seeds: summaries, paired tests, equivalence, Holm, verdicts.

Conventions: values are per-seed numbers (one per seed, in seed order), so arms that share seeds
are paired. Standard errors use ``ddof=1``. One-sided tests state their alternative in their name.

Zero spread is never evidence. When the paired differences of a comparison are all the same
(to :data:`SPREAD_TOLERANCE`), the t statistic is undefined and the seeds carry one observation,
not certainty: the comparison is **degenerate**. Its p-value and its refuting p-value are both 1,
so it can neither support a claim nor refute one, and the verdict names it. (Identical arms,
and arms whose seeds never reached the run, look like this.)

A claim's verdict has three values (:class:`Verdict`), decided by :func:`family_verdict` and
described in words by :func:`outcome_rules` (which generates the "Outcomes" paragraph of every
claim's docstring, so that the documentation cannot drift from the rule):

* **supported**: every comparison of its family rejects its null after Holm correction;
* **refuted**: not supported, and some failing comparison's *refuting* test (the opposite
  one-sided test, or for a margin test the test that the effect lies beyond the margin) rejects
  after Holm correction: the data speak against the claim;
* **inconclusive**: neither. The verdict then carries the minimal detectable effect (80% power at
  the claim's alpha, from the observed spread) and the seeds the observed effect would need, so a
  reader knows whether more seeds could settle it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from scipy import stats as sps

POWER = 0.80            # power at which the minimal detectable effect is computed
MAX_SEEDS_PLANNED = 1000  # seeds_needed is reported as None beyond this
# Paired differences whose spread is at most this (relative to their size, at least 1) are
# identical: floating-point noise of equal metrics, e.g. (1 - a/n) - (1 - b/n) for the same a, b.
SPREAD_TOLERANCE = 1e-9


class ClaimNotSupported(AssertionError):
    """What a claim test raises when its statistic does not support the claim.

    Expected failures at quick scale are ``xfail(raises=ClaimNotSupported)``, so any other
    exception (a crash, a failed run, missing data) stays a red error.
    """


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (``ddof=1``); the error is nan for one value."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_se needs at least one value")
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.nan
    return float(arr.mean()), se


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test on paired differences ``a - b``.

    ``effect`` is the mean difference, ``ci`` a two-sided confidence interval for it at level
    ``1 - 2 * alpha`` (the interval that matches a one-sided test at ``alpha``, and TOST).
    ``alternative`` is what the claim needs (``"greater"``: mean > margin; ``"less"``: mean <
    margin; ``"equivalence"``: |mean| < margin). ``refute_p`` is the p-value of the test that
    would *refute* the claim: the opposite one-sided test against the same null value
    (``greater``: mean < margin; ``less``: mean > margin; ``equivalence``: mean outside
    [-margin, margin], the smaller one-sided p doubled). ``sd`` is the spread of the paired
    differences (``ddof=1``), from which :func:`minimal_detectable_effect` is computed.
    """

    name: str
    statistic: float
    p_value: float
    effect: float
    ci: tuple[float, float]
    n: int
    alpha: float
    alternative: str = "greater"
    margin: float = 0.0
    refute_p: float = 1.0
    sd: float = math.nan
    degenerate: bool = False
    rule: str = ""  # the declared Rule this comparison tests (its effect text), see check_declared

    __test__ = False  # not a pytest test class


def paired_differences(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired tests need two 1-d arrays of equal length; got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError("paired tests need at least 2 seeds")
    return a - b


def confidence_interval(diff: np.ndarray, alpha: float) -> tuple[float, float]:
    mean, se = diff.mean(), diff.std(ddof=1) / math.sqrt(diff.size)
    if se == 0:
        return float(mean), float(mean)
    half = sps.t.ppf(1 - alpha, diff.size - 1) * se
    return float(mean - half), float(mean + half)


def is_degenerate(diff: np.ndarray) -> bool:
    """Whether paired differences have zero spread (to :data:`SPREAD_TOLERANCE`): every seed
    gives the same difference, so the seeds are one observation and no test can be made."""
    return float(diff.std(ddof=1)) <= SPREAD_TOLERANCE * max(1.0, float(np.abs(diff).max()))


def one_sided_t(diff: np.ndarray, shift: float, greater: bool) -> tuple[float, float]:
    """t statistic and p-value for H1: mean(diff) > shift (greater) or < shift. Degenerate
    differences (zero spread) give ``(nan, 1.0)`` in either direction: no evidence."""
    if is_degenerate(diff):
        return math.nan, 1.0
    centred = diff - shift
    se = centred.std(ddof=1) / math.sqrt(diff.size)
    t = centred.mean() / se
    p = sps.t.sf(t, diff.size - 1) if greater else sps.t.cdf(t, diff.size - 1)
    return float(t), float(p)


def spread(diff: np.ndarray) -> float:
    return float(diff.std(ddof=1))


def tested_rule(rule, alternative: str, margin: float) -> str:
    """The effect text of the declared ``rule`` a test is made for, checked against the test's
    own alternative and margin ("" without a rule)."""
    if rule is None:
        return ""
    if rule.alternative != alternative or not math.isclose(rule.margin, margin, abs_tol=1e-12):
        raise ValueError(f"rule {rule.holds()!r} is a {rule.alternative} test at margin "
                         f"{rule.margin:g}, not {alternative} at margin {margin:g}")
    return rule.effect


def paired_greater(a, b, alpha: float = 0.05, margin: float = 0.0, rule=None) -> TestResult:
    """One-sided paired t-test of H1: mean(a - b) > margin (``rule``: the declared
    :class:`Rule` it tests)."""
    diff = paired_differences(a, b)
    t, p = one_sided_t(diff, margin, greater=True)
    return TestResult("paired t, a - b > margin", t, p, float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha, "greater", margin,
                      one_sided_t(diff, margin, greater=False)[1], spread(diff), is_degenerate(diff),
                      tested_rule(rule, "greater", margin))


def paired_less(a, b, alpha: float = 0.05, margin: float = 0.0, rule=None) -> TestResult:
    """One-sided paired t-test of H1: mean(a - b) < margin (non-inferiority or non-superiority
    when margin > 0; ``rule``: the declared :class:`Rule` it tests)."""
    diff = paired_differences(a, b)
    t, p = one_sided_t(diff, margin, greater=False)
    return TestResult("paired t, a - b < margin", t, p, float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha, "less", margin,
                      one_sided_t(diff, margin, greater=True)[1], spread(diff), is_degenerate(diff),
                      tested_rule(rule, "less", margin))


def tost_paired(a, b, margin: float, alpha: float = 0.05, rule=None) -> TestResult:
    """Paired TOST: H1 is equivalence, ``-margin < mean(a - b) < margin``.

    The p-value is the larger of the two one-sided p-values; equivalence is declared when it is
    below ``alpha``, which is the same as the ``1 - 2 alpha`` interval lying inside the margin.
    """
    if margin <= 0:
        raise ValueError(f"an equivalence margin must be positive; got {margin}")
    diff = paired_differences(a, b)
    t_low, p_low = one_sided_t(diff, -margin, greater=True)
    t_high, p_high = one_sided_t(diff, margin, greater=False)
    worst = (t_low, p_low) if p_low >= p_high else (t_high, p_high)
    beyond = min(one_sided_t(diff, margin, greater=True)[1], one_sided_t(diff, -margin, greater=False)[1])
    return TestResult(f"paired TOST, |a - b| < {margin:g}", worst[0], worst[1], float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha, "equivalence", margin,
                      min(1.0, 2 * beyond), spread(diff), is_degenerate(diff),
                      tested_rule(rule, "equivalence", margin))


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """Holm-Bonferroni step-down: adjusted p-values (monotone, capped at 1) and rejections."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist(), (adjusted < alpha).tolist()


def power(n: int, alpha: float, factor: float, alternative: str = "greater") -> float:
    """Power of a paired test over ``n`` seeds at level ``alpha``, for an effect ``factor``
    standard errors (``sd / sqrt(n)``, the true spread) from its null value.

    One-sided tests (``greater``, ``less``): exact, from the noncentral t distribution. TOST
    (``equivalence``): for a true effect of 0 and a margin ``factor`` standard errors wide on
    either side; both one-sided halves must reject with the same estimated spread, so the power
    is ``E[max(0, 2 Phi(factor - t_crit * s / sd) - 1)]`` over the chi distribution of ``s``,
    integrated numerically.
    """
    df = n - 1
    critical = sps.t.ppf(1 - alpha, df)
    if alternative != "equivalence":
        return float(sps.nct.sf(critical, df, factor))
    from scipy import integrate

    def both_halves(u):  # u ~ chi2(df); s / sd = sqrt(u / df)
        inside = factor - critical * math.sqrt(u / df)
        return max(0.0, 2 * sps.norm.cdf(inside) - 1) * sps.chi2.pdf(u, df)

    # Beyond (factor / critical)^2 df the integrand is 0; past chi2's 1e-12 tails it is nothing.
    upper = min((factor / critical) ** 2 * df, sps.chi2.isf(1e-12, df))
    return float(integrate.quad(both_halves, 0, upper, limit=200)[0]) if upper > 0 else 0.0


@lru_cache(maxsize=4096)
def detectable_factor(n: int, alpha: float, power_wanted: float = POWER,
                      alternative: str = "greater") -> float:
    """The effect, in standard errors, that ``n`` seeds detect with ``power_wanted`` at level
    ``alpha`` (:func:`power` solved for its ``factor``): the minimal detectable effect of a
    paired test in units of ``sd / sqrt(n)``. For TOST it is the margin at which a true
    effect of 0 is shown equivalent with that power, about ``t(1 - alpha) + t(1 - beta / 2)``,
    since both one-sided halves must reject."""
    from scipy.optimize import brentq

    def short(f):
        return power(n, alpha, f, alternative) - power_wanted

    upper = 16.0
    while short(upper) < 0:  # two seeds at a family's split alpha need hundreds of errors
        upper *= 2
    return float(brentq(short, 0.0, upper, xtol=1e-6 * upper))


def minimal_detectable_effect(test: TestResult, tests_in_family: int, power_wanted: float = POWER) -> float:
    """Smallest distance from the test's null value (0 or its margin) that ``test.n`` seeds would
    detect with ``power_wanted``, at the claim's alpha split over the family (Bonferroni, which
    is Holm's first step and so conservative), from the observed spread of the paired
    differences. For TOST: the margin within which these seeds would show a true effect of 0
    equivalent. nan for a degenerate test (zero spread: no spread to plan from)."""
    if not test.n or math.isnan(test.sd) or test.degenerate:
        return math.nan
    return detectable_factor(test.n, test.alpha / tests_in_family, power_wanted,
                             test.alternative) * test.sd / math.sqrt(test.n)


def distance_from_null(test: TestResult) -> float:
    """How far the observed effect lies from the null value *in the claim's direction*
    (negative: the estimate points against the claim)."""
    if test.alternative == "greater":
        return test.effect - test.margin
    if test.alternative == "less":
        return test.margin - test.effect
    return test.margin - abs(test.effect)


def seeds_needed(test: TestResult, tests_in_family: int, power_wanted: float = POWER) -> int | None:
    """Seeds at which the observed effect and spread would reach ``power_wanted`` (roughly: the
    observed spread is taken as the true one; for TOST, the factor of a true effect of 0 is held
    against the distance to the nearer bound, which overstates the seeds needed); None when the
    estimate points against the claim, when the comparison is degenerate, or when more than
    ``MAX_SEEDS_PLANNED`` would be needed."""
    distance = distance_from_null(test)
    if not distance > 0 or test.degenerate:
        return None

    def enough(n: int) -> bool:
        factor = detectable_factor(n, test.alpha / tests_in_family, power_wanted, test.alternative)
        return factor * test.sd / math.sqrt(n) <= distance

    low, high = max(2, test.n), MAX_SEEDS_PLANNED
    if not enough(high):
        return None
    while low < high:  # the detectable effect shrinks as seeds grow: bisect on n
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle + 1, high)
    return low


@dataclass
class Verdict:
    """The outcome of one claim, with the numbers behind it.

    Attributes
    ----------
    supported : bool
    statistic : str
        What was tested, in words (the test, its alternative, margin and correction).
    effect : float
        The headline effect size (see ``effect_unit``).
    ci : tuple of float
        Confidence interval of the headline effect.
    p_value : float
        The p-value of the test that decided the verdict, Holm-adjusted (see ``p_kind``): for a
        supported or inconclusive claim the supporting tests' (the largest adjusted p of the
        all-must-hold family), for a refuted one its refuting test's.
    alpha : float
    seeds : list of int
    per_seed : dict
        Per-seed values of each arm, keyed by arm name.
    comparisons : list of dict
        Each test in the family: label, effect, CI, raw and adjusted p-value, rejected, and the
        adjusted p-value of its refuting test.
    summary : str
        One line for the report.
    outcome : str
        ``"supported"``, ``"refuted"`` or ``"inconclusive"`` (see the module docstring).
    effect_unit : str
        What the effect measures and which sign supports the claim.
    mde : float
        For a claim that is not supported: the minimal detectable effect of its deciding
        comparison (distance from its null value; 80% power at the claim's alpha).
    seeds_needed : int or None
        Seeds the deciding comparison's observed effect would need for 80% power (None: the
        estimate points against the claim, or more than 1,000 seeds).
    gate : dict or None
        The arm's learned-something gate (see ``harness.experiments.protocols.learned_something``).
    reason : str
        Why the claim is not supported, in one sentence.
    p_kind : str
        Which test ``p_value`` belongs to: ``"supporting"`` (the claim's own tests, Holm over
        the family) or ``"refuting"`` (the opposite tests, Holm over the family's refuting tests).
    decided_by : str
        The label of the comparison whose p-value ``p_value`` is.
    p_supporting : float
        The supporting tests' Holm-adjusted p whatever the outcome (verdicts stored before
        ``p_kind`` existed have it as ``p_value`` for every outcome, refuted included).
    sequential : dict or None
        Under sequential seeds (``--seeds=auto``): the design, every look (seeds, decision, the
        family's statistic and its boundary on both sides, alpha spent) and why it stopped
        (:func:`harness.judging.sequential.judged`); None for a fixed number of seeds.
    """

    supported: bool
    statistic: str
    effect: float
    ci: tuple[float, float]
    p_value: float
    alpha: float
    seeds: list[int]
    per_seed: dict = field(default_factory=dict)
    comparisons: list[dict] = field(default_factory=list)
    summary: str = ""
    outcome: str = ""
    effect_unit: str = ""
    mde: float = math.nan
    seeds_needed: int | None = None
    gate: dict | None = None
    reason: str = ""
    p_kind: str = "supporting"
    decided_by: str = ""
    p_supporting: float = math.nan
    sequential: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def deciding_test(comparisons: list[dict], outcome: str) -> tuple[float, str, str]:
    """``(p, kind, label)`` of the test that decides a verdict with ``outcome`` over its
    family's ``comparisons`` (dicts as :func:`family_verdict` writes them): for ``refuted``, the
    failing comparison whose refuting test rejects most strongly (its Holm-adjusted refuting p,
    kind ``"refuting"``); otherwise the weakest supporting test (the largest Holm-adjusted p,
    kind ``"supporting"``: it must reject for the claim to hold). Also reads verdicts stored
    before ``p_kind`` existed."""
    if outcome == "refuted":
        against = [c for c in comparisons if not c["rejected"] and c.get("refuted")]
        if against:
            strongest = min(against, key=lambda c: c["p_refute_adjusted"])
            return strongest["p_refute_adjusted"], "refuting", strongest["label"]
    weakest = max(comparisons, key=lambda c: c["p_adjusted"])  # max keeps the first of ties
    return weakest["p_adjusted"], "supporting", weakest["label"]


def family_verdict(tests: dict[str, TestResult], alpha: float, statistic: str, seeds,
                   per_seed: dict, summary: str = "", effect_unit: str = "") -> Verdict:
    """A claim that holds only if every test in the family rejects after Holm correction.

    The headline effect and CI are those of the comparison that decides the verdict: the
    weakest supporting comparison (largest adjusted p-value), or for a refuted claim the
    comparison whose refuting test rejects most strongly (:func:`deciding_test`), so that the
    effect, its CI and the p shown beside them always belong to one test.
    A claim that fails is *refuted* when the refuting test of some failing comparison rejects
    after Holm correction over the family's refuting tests, else *inconclusive*, with the
    deciding comparison's minimal detectable effect and the seeds its observed effect needs.
    A degenerate comparison (zero spread) never rejects either way; an inconclusive verdict
    with one names it first, since no number of such seeds can decide it.
    """
    if not tests:
        raise ValueError(f"a claim needs at least one comparison; {statistic!r} has none "
                         "(does the grid hold the cells the claim compares?)")
    labels = list(tests)
    adjusted, rejected = holm([tests[k].p_value for k in labels], alpha)
    refute_adjusted, refuted = holm([tests[k].refute_p for k in labels], alpha)
    comparisons = [{"label": k, "effect": tests[k].effect, "ci": list(tests[k].ci),
                    "statistic": tests[k].statistic, "p_value": tests[k].p_value,
                    "p_adjusted": adj, "rejected": rej, "alternative": tests[k].alternative,
                    "margin": tests[k].margin, "p_refute_adjusted": r_adj, "refuted": ref,
                    "degenerate": tests[k].degenerate, "rule": tests[k].rule,
                    "p_refute": tests[k].refute_p, "sd": tests[k].sd}
                   for k, adj, rej, r_adj, ref in zip(labels, adjusted, rejected,
                                                      refute_adjusted, refuted)]
    weakest = max(range(len(labels)), key=lambda i: (adjusted[i], -i))
    worst = tests[labels[weakest]]
    verdict = Verdict(all(rejected), statistic, worst.effect, worst.ci, adjusted[weakest], alpha,
                      list(seeds), per_seed, comparisons, summary, effect_unit=effect_unit,
                      decided_by=labels[weakest], p_supporting=adjusted[weakest])
    if verdict.supported:
        verdict.outcome = "supported"
        return verdict
    against = [c for c in comparisons if not c["rejected"] and c["refuted"]]
    verdict.outcome = "refuted" if against else "inconclusive"
    # A refuted claim is decided by its refuting test: its p, not the supporting tests' (about
    # 1 when the data point the other way), is the one that says how sure the refutation is.
    verdict.p_value, verdict.p_kind, verdict.decided_by = deciding_test(comparisons, verdict.outcome)
    if verdict.p_kind == "refuting":  # the headline effect and CI are the deciding test's too
        decided = next(c for c in comparisons if c["label"] == verdict.decided_by)
        verdict.effect, verdict.ci = decided["effect"], tuple(decided["ci"])
    verdict.mde = minimal_detectable_effect(worst, len(labels))
    verdict.seeds_needed = seeds_needed(worst, len(labels))
    degenerate = [c for c in comparisons if c["degenerate"]]
    if against:
        verdict.reason = (f"refuted: {verdict.decided_by} shows the opposite of the claim "
                          f"(refuting test p_holm = {verdict.p_value:.3g})")
    elif degenerate:
        verdict.reason = (f"inconclusive: {len(degenerate)} of {len(comparisons)} comparisons are "
                          f"degenerate: the paired differences of {degenerate[0]['label']} are "
                          f"{degenerate[0]['effect']:.6g} at every one of the {worst.n} seeds (zero "
                          "spread: identical arms, seeds that do not vary, or predictions that do "
                          "not depend on the seed); zero spread is no evidence either way")
    elif not verdict.mde > 0:  # nan: no spread to plan from (never a detectable effect of 0)
        verdict.reason = (f"inconclusive: {labels[weakest]} is not significant "
                          f"(p_holm = {adjusted[weakest]:.3g}); its paired differences have zero "
                          f"spread over the {worst.n} seeds, so no minimal detectable effect can "
                          "be given")
    else:
        needed = (f"about {verdict.seeds_needed} seeds would detect the observed effect"
                  if verdict.seeds_needed else "the observed effect points against the claim"
                  if distance_from_null(worst) <= 0 else
                  f"more than {MAX_SEEDS_PLANNED} seeds would be needed to detect it")
        verdict.reason = (f"inconclusive: {labels[weakest]} is not significant "
                          f"(p_holm = {adjusted[weakest]:.3g}); with {worst.n} seeds the smallest "
                          f"detectable effect is {verdict.mde:.3g} at 80% power; {needed}")
    return verdict


@dataclass(frozen=True)
class Rule:
    """One kind of comparison in a claim's family, as the claim declares it before any run.

    ``effect`` says what the paired difference measures (e.g. "error(balanced-trained) -
    error(matched-trained) at each test ratio <= 0.3"), ``alternative`` and ``margin`` are those
    of the :class:`TestResult` that tests it (``greater``: effect > margin; ``less``: effect <
    margin; ``equivalence``: |effect| < margin). A declared rule must be tested by some
    comparison of every verdict unless ``required`` is false.
    """

    effect: str
    alternative: str = "greater"
    margin: float = 0.0
    required: bool = True  # False: a family may lack it (e.g. no test where none is needed)

    def holds(self) -> str:
        return {"greater": f"{self.effect} > {self.margin:g}",
                "less": f"{self.effect} < {self.margin:g}",
                "equivalence": f"|{self.effect}| < {self.margin:g}"}[self.alternative]

    def refutes(self) -> str:
        return {"greater": f"{self.effect} significantly < {self.margin:g}",
                "less": f"{self.effect} significantly > {self.margin:g}",
                "equivalence": f"{self.effect} significantly outside +-{self.margin:g}"}[self.alternative]

def outcome_rules(rules: Sequence[Rule], alpha: float) -> str:
    """The "supported when / refuted when / inconclusive when" sentences of a claim, written from
    the rule :func:`family_verdict` and :func:`gated` apply, for the comparisons in ``rules``."""
    return (f"Outcomes (generated from the verdict rule, harness.judging.stats): supported when "
            f"every comparison holds after Holm correction over the family at alpha = {alpha:g}: "
            + "; ".join(r.holds() for r in rules) + ". Refuted when it is not supported and some "
            "comparison that does not hold has its refuting test reject after Holm correction: "
            + "; ".join(r.refutes() for r in rules) + ". Inconclusive otherwise. A comparison "
            "whose paired differences have zero spread over the seeds is degenerate and counts "
            "for neither; a claim whose arm fails the learned-something gate is inconclusive, "
            "and one whose seeds do not vary is an error. Under sequential seeds (--seeds=auto) "
            "the same tests are made at looks of 5, 10, 20, ... seeds up to the maximum the "
            "arm declares, each held to Lan-DeMets O'Brien-Fleming-type boundaries "
            "that spend this alpha across the looks, with Holm's step-down at each look; the "
            "claim stops when supported, refuted, or out of reach of the maximum (inconclusive) "
            "(harness.judging.sequential).")


def declare_outcomes(*rules: Rule, alpha: float):
    """Decorator for a claim test: appends :func:`outcome_rules` to its docstring and keeps the
    rules on it (``outcome_rules``), so that each verdict can be checked against what the
    docstring says (:func:`check_declared`)."""
    import textwrap

    if not rules:
        raise ValueError("a claim declares at least one kind of comparison")

    def decorate(fn):
        # Not at hyphens: the docstring check joins the lines with spaces.
        text = textwrap.fill(outcome_rules(rules, alpha), 96, initial_indent="    ",
                             subsequent_indent="    ", break_on_hyphens=False)
        fn.__doc__ = (fn.__doc__ or "").rstrip() + "\n\n" + text + "\n    "
        fn.outcome_rules = (tuple(rules), alpha)
        return fn

    return decorate


def check_declared(verdict: Verdict, declared) -> None:
    """Raise when ``verdict`` does not match what its claim's docstring declares (``declared`` is
    ``(rules, alpha)`` from :func:`declare_outcomes`): another alpha, a comparison made for no
    declared rule (each test names its rule with ``rule=``, whose alternative and margin must be
    the test's), or a declared rule that no comparison tests. The claim's words and its code
    would have drifted apart."""
    rules, alpha = declared
    if not math.isclose(verdict.alpha, alpha):
        raise ValueError(f"the claim declares alpha = {alpha:g} but its verdict used {verdict.alpha:g}")
    by_effect = {r.effect: r for r in rules}
    for c in verdict.comparisons:
        rule = by_effect.get(c.get("rule", ""))
        if rule is None:
            raise ValueError(f"comparison {c['label']!r} tests no rule the claim's docstring declares "
                             f"(it names {c.get('rule') or 'none'!r}); declared: "
                             + "; ".join(r.holds() for r in rules))
    untested = [r.holds() for r in rules
                if r.required and r.effect not in {c.get("rule") for c in verdict.comparisons}]
    if untested:
        raise ValueError("the claim's docstring declares comparisons its verdict never makes: "
                         + "; ".join(untested))


def gated(verdict: Verdict, gate: dict) -> Verdict:
    """``verdict`` with the arm's learned-something gate applied: a claim on models that did not
    beat the class prior is never supported (it is inconclusive, with the gate as the reason)."""
    verdict.gate = gate
    if not gate["passed"]:
        verdict.supported = False
        verdict.outcome = "inconclusive"
        verdict.p_value, verdict.p_kind, verdict.decided_by = deciding_test(verdict.comparisons,
                                                                             "inconclusive")
        verdict.reason = ("gate failed: the arm's models did not learn beyond the class prior ("
                          + gate["summary"] + "); no claim on them can be supported")
    return verdict
