"""Group-sequential seeds: more seeds only at looks declared in advance, alpha spent across them.

A claim judged at a fixed number of seeds either has enough of them or does not; looking at the
result and adding seeds until it holds is optional stopping, which inflates false positives
(re-judging at alpha = 0.05 after each of the looks 5, 10, 20, 40, 80 rejects a true null about
16% of the time). A group-sequential :class:`Design` declares its looks (the seeds per arm at
each, doubling from :data:`FIRST_LOOK` up to the arm's maximum) and a spending function before
any run: at look ``k`` a test may reject only at a nominal level whose cumulative crossing
probability under its null is ``alpha(t_k)``, ``t_k`` the information fraction (seeds at the look
over the maximum). The spending function is Lan and DeMets' O'Brien-Fleming type, declared for
every claim before any sequential result was seen: it spends almost nothing at the first looks,
so the last look's level is close to the fixed design's alpha.

The boundaries are computed on the normal scale with the recursive numerical integration of
Jennison and Turnbull (2000, ch. 19) as R's gsDesign implements it, through its Python port
``gsdesign`` (``h1`` / ``hupdate``), solved look by look with Brent's method; each boundary
becomes a nominal one-sided p-value level that the claim's own paired t-tests are held to
(:meth:`Design.level`). ``tests/test_sequential.py`` checks gsDesign's published bounds and, by
simulation, the error rates of the whole rule below.

The rule at look ``k`` (:func:`decide`), for a claim whose family must hold whole:

* **supported** when Holm's step-down over the family's supporting p-values rejects every
  comparison, the ``j``-th smallest p (from 0) held to the level of the same design spending
  ``alpha / (m - j)`` (Holm's local levels, each with its own boundaries: the group-sequential
  Holm procedure of Maurer and Bretz, 2013, without carrying rejections across looks, which only
  makes it stricter), and the arm's learned-something gate passed;
* **refuted** when not supported and the same step-down over the refuting p-values rejects the
  refuting test of some comparison that does not hold;
* **futile** (inconclusive, stopped early) when neither is within reach of the design's maximum:
  the arm's gate failed, a comparison that does not hold has zero spread, or even at the ends
  of the confidence intervals most favourable to each side neither would be reached with 80%
  power by the maximum seeds (:func:`within_reach`). Futility only ever stops a claim as
  inconclusive (non-binding: the boundaries ignore it), so it cannot raise either error rate.
  The futility rule is exploratory: it was revised twice after the first full runs (from the
  point estimate, then from the favourable CI end at alpha over the family, to Holm's level for
  the comparisons left), each revision letting a claim continue longer; the boundaries were
  never changed;
* **continue** otherwise; at the last look a claim neither supported nor refuted is
  inconclusive at its maximum, with its minimal detectable effect.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

from . import stats

# Seeds at the first look: the fixed design's, so the first look costs what fixed seeds cost. It
# decides little there: its nominal level is 4e-15 of a design up to 80 seeds and 9e-5 of one up
# to 20, so it mostly stops claims for futility (a failed gate, zero spread, nothing in reach).
FIRST_LOOK = 5
GRID_POINTS = 18  # gsDesign's default r: the grid resolution of the recursive integration
SPENDING = "Lan-DeMets O'Brien-Fleming-type"
# The futility rule is exploratory (module docstring); the verdict and the report say so.
FUTILITY = ("non-binding (stops only as inconclusive; the boundaries ignore it); exploratory: "
            "revised twice after the first full runs, to be confirmed on fresh seeds (--seed-offset)")


def doubling_looks(maximum: int, first: int = FIRST_LOOK) -> tuple[int, ...]:
    """Seeds at each look: ``first``, doubling, up to ``maximum`` (the last look, always)."""
    if maximum < first:
        raise ValueError(f"a design's maximum ({maximum} seeds) is below its first look ({first})")
    looks = [first]
    while looks[-1] * 2 < maximum:
        looks.append(looks[-1] * 2)
    return tuple(looks) + ((maximum,) if looks[-1] != maximum else ())


def obrien_fleming(alpha: float, t: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``,
    the alpha spent by information fraction ``t`` (almost nothing early, ``alpha`` at 1)."""
    from scipy.stats import norm

    return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(t)))


@dataclass(frozen=True)
class Design:
    """A claim's declared sequential design.

    Parameters
    ----------
    looks : tuple of int
        Seeds per arm at each look, increasing from at least 2; the last is the maximum.
    alpha : float
        One-sided type I error of the whole sequence (the claim's alpha), for supporting and for
        refuting alike.
    """

    looks: tuple[int, ...] = (5, 10, 20, 40, 80)
    alpha: float = 0.05

    def __post_init__(self):
        if not self.looks or self.looks[0] < 2 or any(b <= a for a, b in zip(self.looks, self.looks[1:])):
            raise ValueError(f"looks must increase from at least 2 seeds; got {self.looks}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5); got {self.alpha}")

    @property
    def maximum(self) -> int:
        return self.looks[-1]

    @property
    def fractions(self) -> list[float]:
        """Information fraction at each look: its seeds over the maximum."""
        return [n / self.maximum for n in self.looks]

    @property
    def spent(self) -> list[float]:
        """Cumulative alpha spent by each look."""
        return [obrien_fleming(self.alpha, t) for t in self.fractions]

    @property
    def bounds(self) -> tuple[float, ...]:
        """Efficacy boundary on the z scale at each look."""
        return boundaries(self.looks, self.alpha)

    @property
    def nominal_levels(self) -> tuple[float, ...]:
        """The one-sided p-value each look's test must fall below to stop."""
        return self.levels(self.alpha)

    def levels(self, alpha: float) -> tuple[float, ...]:
        from scipy.stats import norm

        return tuple(float(norm.sf(b)) for b in boundaries(self.looks, alpha))

    def level(self, k: int, share: float = 1.0) -> float:
        """The nominal one-sided level at look ``k`` of this design spending ``alpha * share``
        (Holm's local alpha at a step of the step-down)."""
        return self.levels(self.alpha * share)[k]

    def expected_seeds(self, effect: float, sequences: int = 4000) -> float:
        """Expected seeds per arm of one comparison whose true effect is ``effect`` per-seed
        standard deviations (normal per-seed differences): the mean stopping look of
        ``sequences`` simulated sequences held to the efficacy boundaries with the paired t-test
        the claims use (a fixed random seed, so a plan is reproducible). A claim stopped by a
        refutation or for futility costs less; one whose family has several comparisons, more."""
        import numpy as np
        from scipy.stats import t as student

        rng = np.random.default_rng(20261201)
        diffs = rng.normal(effect, 1.0, size=(sequences, self.maximum))
        stop = np.full(sequences, float(self.maximum))
        live = np.ones(sequences, dtype=bool)
        for n, level in zip(self.looks, self.nominal_levels):
            x = diffs[:, :n]
            p = student.sf(x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n)), n - 1)
            crossed = live & (p < level)
            stop[crossed], live = n, live & ~crossed
        return float(stop.mean())

    def describe(self) -> dict:
        """What the verdict records of the design."""
        return {"looks": list(self.looks), "alpha": self.alpha, "spending": SPENDING,
                "futility": FUTILITY, "spent": [round(s, 6) for s in self.spent],
                "nominal_levels": [float(f"{p:.4g}") for p in self.nominal_levels]}


def planning_effect(alpha: float, power: float = stats.POWER) -> float:
    """The effect ``plan`` prices sequential seeds at, in per-seed standard deviations: the
    fixed 5-seed design's minimal detectable effect (80% power at ``alpha``)."""
    return stats.detectable_factor(FIRST_LOOK, alpha, power) / math.sqrt(FIRST_LOOK)


@lru_cache(maxsize=1024)
def boundaries(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """One-sided upper boundaries whose cumulative crossing probabilities under the null are
    the O'Brien-Fleming-type spending at the looks' information fractions (a Brownian motion
    observed at those times)."""
    import numpy as np
    from gsdesign import h1, hupdate
    from scipy.optimize import brentq
    from scipy.stats import norm

    fractions = [n / looks[-1] for n in looks]
    bounds, previous, grid = [], 0.0, None
    for k, t in enumerate(fractions):
        cumulative = obrien_fleming(alpha, t)
        target = cumulative - previous  # what this look may spend
        if target <= 1e-15:
            bound = 40.0  # nothing to spend: a boundary no statistic reaches
        elif k == 0:
            bound = float(norm.isf(target))
        else:
            def crossing(b, k=k, t=t, grid=grid, target=target):
                return float(hupdate(GRID_POINTS, 0.0, t, b, np.inf, 0.0, fractions[k - 1], grid)[2].sum()) - target
            bound = float(brentq(crossing, -10.0, 40.0, xtol=1e-10))
        grid = (h1(GRID_POINTS, 0.0, t, -np.inf, bound) if k == 0 else
                hupdate(GRID_POINTS, 0.0, t, -np.inf, bound, 0.0, fractions[k - 1], grid))
        bounds.append(bound)
        previous = cumulative
    return tuple(bounds)


def step_down(p_values, design: Design, k: int) -> tuple[list[bool], list[float], float, float]:
    """Holm's step-down at look ``k`` with sequential levels: the ``j``-th smallest p (from 0)
    of ``m`` is held to :meth:`Design.level` ``(k, 1 / (m - j))``; the first that does not
    reject stops it. Returns the rejections, the level each comparison was held to (nan past
    the stop), and the p and level of the step that stopped it (of the last step when every
    comparison rejects): the family's statistic and its boundary."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    rejected, levels = [False] * m, [math.nan] * m
    p, level = math.nan, math.nan
    for j, i in enumerate(order):
        p, level = p_values[i], design.level(k, 1 / (m - j))
        levels[i] = level
        if not p < level:
            break
        rejected[i] = True
    return rejected, levels, p, level


@dataclass
class Look:
    """What one look saw and decided."""

    k: int
    n: int
    decision: str        # supported, refuted, futile, continue, or inconclusive (at the maximum)
    support_p: float     # the step-down's supporting p where it stopped, and its level
    support_level: float
    refute_p: float
    refute_level: float
    alpha_spent: float
    why: str = ""

    @property
    def stops(self) -> bool:
        return self.decision != "continue"


def as_test(comparison: dict, n: int, alpha: float) -> stats.TestResult:
    """The :class:`~harness.judging.stats.TestResult` a verdict's comparison row was made from
    (enough of it to plan seeds)."""
    return stats.TestResult(comparison["label"], math.nan, comparison["p_value"], comparison["effect"],
                            tuple(comparison["ci"]), n, alpha, comparison["alternative"],
                            comparison["margin"], comparison.get("p_refute", 1.0),
                            comparison.get("sd", math.nan), comparison["degenerate"])


def refuting_test(test: stats.TestResult) -> stats.TestResult:
    """The refuting test of ``test`` as a test of its own (its alternative the opposite side of
    the same null value; for equivalence, the nearer bound exceeded, at half the alpha since its
    p is doubled), so that :func:`harness.judging.stats.seeds_needed` plans refutations too."""
    if test.alternative == "greater":
        return replace(test, alternative="less")
    if test.alternative == "less":
        return replace(test, alternative="greater")
    upper = test.effect >= 0
    return replace(test, alternative="greater" if upper else "less",
                   margin=test.margin if upper else -test.margin, alpha=test.alpha / 2)


def favourable(test: stats.TestResult, towards_claim: bool) -> stats.TestResult:
    """``test`` with its effect moved to the end of its confidence interval (level ``1 - 2
    alpha``: each end a one-sided bound at ``alpha``) that is most favourable to the claim
    (``towards_claim``) or to its refutation: the largest effect the data leave plausible either
    way."""
    low, high = test.ci
    if test.alternative == "greater":
        effect = high if towards_claim else low
    elif test.alternative == "less":
        effect = low if towards_claim else high
    elif towards_claim:  # equivalence: the end nearest 0 (0 when the interval spans it)
        effect = 0.0 if low <= 0 <= high else min(low, high, key=abs)
    else:
        effect = max(low, high, key=abs)
    return replace(test, effect=effect)


def within_reach(verdict: stats.Verdict, design: Design, holding: list[bool]) -> str:
    """Why the claim could still be decided by the design's maximum ("" when it could not).

    Supporting is within reach when every comparison that does not hold yet (``holding``: the
    look's step-down rejections), at the end of its confidence interval most favourable to the
    claim, would be shown with 80% power by the maximum at Holm's level for the comparisons
    left (alpha over their number; the family must hold whole); refuting, when some
    comparison at the end most favourable to its refutation would be refuted so at Holm's first
    level (alpha over the family). Each is planned from the observed spread at the fixed-n
    level (:func:`harness.judging.stats.seeds_needed`). Taking the interval's end, not the
    estimate, keeps an early look's noisy estimate from stopping a claim whose data still allow
    an effect the maximum would detect."""
    m, n = len(verdict.comparisons), len(verdict.seeds)
    tests = [as_test(c, n, verdict.alpha) for c in verdict.comparisons]
    left = [t for t, h in zip(tests, holding) if not h]
    support = [stats.seeds_needed(favourable(t, True), len(left)) for t in left]
    if all(s is not None and s <= design.maximum for s in support):
        # (not a seed count: at an early look the boundary, not the seeds, is what is missing)
        return (f"no boundary crossed yet; supporting is within reach of the {design.maximum}-seed "
                "maximum at the favourable ends of the CIs")
    for test in tests:
        needed = stats.seeds_needed(refuting_test(favourable(test, False)), m)
        if needed is not None and needed <= design.maximum:
            return (f"no boundary crossed yet; refuting {test.name} is within reach of the "
                    f"{design.maximum}-seed maximum")
    return ""


def decide(verdict: stats.Verdict, design: Design, k: int) -> Look:
    """The decision at look ``k`` on ``verdict`` (a gated family verdict over the look's seeds):
    see the module docstring."""
    comparisons = verdict.comparisons
    support, _, s_p, s_level = step_down([c["p_value"] for c in comparisons], design, k)
    refute_p = [c.get("p_refute", 1.0) for c in comparisons]
    refute, refute_levels, r_p, r_level = step_down(refute_p, design, k)
    last = k == len(design.looks) - 1
    look = Look(k, design.looks[k], "continue", s_p, s_level, r_p, r_level, design.spent[k])
    gate_failed = verdict.gate is not None and not verdict.gate["passed"]
    if all(support) and not gate_failed:
        look.decision, look.why = "supported", "every comparison crossed its sequential boundary"
    elif any(r and not s for r, s in zip(refute, support)) and not gate_failed:
        i = min((i for i, (r, s) in enumerate(zip(refute, support)) if r and not s), key=refute_p.__getitem__)
        look.decision = "refuted"
        look.why = (f"the refuting test of {comparisons[i]['label']} crossed its sequential boundary "
                    f"(p = {refute_p[i]:.3g} < {refute_levels[i]:.3g})")
    elif last:
        look.decision, look.why = "inconclusive", f"neither boundary crossed at the maximum of {design.maximum} seeds"
    elif gate_failed:
        look.decision, look.why = "futile", "the arm's models did not learn beyond the class prior"
    elif any(c["degenerate"] and not s for c, s in zip(comparisons, support)):
        look.decision, look.why = "futile", "a comparison that does not hold has zero spread"
    else:
        reach = within_reach(verdict, design, support)
        if reach:
            look.why = reach
        else:
            look.decision = "futile"
            look.why = (f"even at the favourable ends of their confidence intervals, the comparisons "
                        f"could be neither supported nor refuted with 80% power by the maximum of "
                        f"{design.maximum} seeds")
    return look


@dataclass
class History:
    """A claim's design and the looks made so far."""

    design: Design
    looks: list[Look] = field(default_factory=list)
    ended: bool = False  # the claim reached no verdict at the look after the last one made

    @property
    def stopped(self) -> bool:
        return bool(self.looks) and self.looks[-1].stops

    def seeds_now(self) -> int:
        """Seeds the claim is judged on: its last look's; where it reached no verdict, the look
        it failed at (so its test reports why); the first look's before any."""
        if self.ended:
            return self.design.looks[len(self.looks)]
        return self.looks[-1].n if self.looks else self.design.looks[0]

    def to_dict(self) -> dict:
        last = self.looks[-1] if self.looks else None
        stop = last.decision if last else ""
        return {"design": self.design.describe(), "looks": [asdict(x) for x in self.looks],
                "stopped_at": self.seeds_now(), "stop": stop,
                # what the terminal line and the report's row show: a futility stop is the
                # exploratory rule's (FUTILITY), wherever verdicts are listed
                "stop_label": f"{stop}, exploratory rule" if stop == "futile" else stop,
                "why": last.why if last else ""}


def judged(verdict: stats.Verdict, history: History) -> stats.Verdict:
    """``verdict`` (gated, over the seeds of one of the design's looks: the one the history
    stopped at) decided by the design at that look: its outcome is the look's decision (futile
    and inconclusive are both ``inconclusive``), and ``verdict.sequential`` records the design
    and every look."""
    design, n = history.design, len(verdict.seeds)
    if n not in design.looks:
        raise ValueError(f"a sequential verdict is judged at one of its looks {design.looks}; "
                         f"it has {n} seeds")
    k = design.looks.index(n)
    look = decide(verdict, design, k)
    history = History(design, history.looks[:k] + [look])
    verdict.statistic += (f"; group-sequential over looks at {', '.join(map(str, design.looks))} "
                          f"seeds ({SPENDING} spending of alpha = {design.alpha:g}, Holm's "
                          "step-down at each look)")
    verdict.sequential = history.to_dict()
    verdict.supported = look.decision == "supported"
    if look.decision == "supported":
        verdict.outcome, verdict.reason = "supported", ""
        verdict.p_value, verdict.p_kind, verdict.decided_by = stats.deciding_test(verdict.comparisons, "supported")
        return verdict
    if look.decision == "refuted":
        verdict.outcome = "refuted"
        verdict.p_value, verdict.p_kind, verdict.decided_by = stats.deciding_test(verdict.comparisons, "refuted")
        verdict.reason = f"refuted at {n} seeds: {look.why}"
        return verdict
    verdict.outcome = "inconclusive"
    verdict.p_value, verdict.p_kind, verdict.decided_by = stats.deciding_test(verdict.comparisons,
                                                                              "inconclusive")
    where = {"inconclusive": "at the design's maximum",
             "futile": f"stopped for futility at {n} of at most {design.maximum} seeds"}.get(
        look.decision, f"at {n} seeds, where the sequential rounds reached no verdict")
    # Not the fixed-n verdict's reason: it may say "refuted" at the fixed-n level, which is not
    # the sequential boundary, or name a number of seeds beyond the design's maximum (an
    # invitation to optional stopping). Its minimal detectable effect at these seeds is fair.
    detail = (f"with {n} seeds the smallest detectable effect is {verdict.mde:.3g} at 80% power "
              "(fixed-n)" if verdict.mde and verdict.mde > 0 else "")
    verdict.reason = f"inconclusive {where}: {look.why}" + (f"; {detail}" if detail else "")
    return verdict
