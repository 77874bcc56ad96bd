"""Statistics for claims over seeds: summaries, paired tests, equivalence, Holm, verdicts.

Conventions: values are per-seed numbers (one per seed, in seed order), so arms that share seeds
are paired. Standard errors use ``ddof=1``. One-sided tests state their alternative in their name.
When all paired differences are identical the t statistic is undefined; the test then decides
exactly (p = 0 if the alternative holds for every seed, p = 1 otherwise), which is what any
t-test would approach as the spread goes to zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as sps


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
    """

    name: str
    statistic: float
    p_value: float
    effect: float
    ci: tuple[float, float]
    n: int
    alpha: float

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


def one_sided_t(diff: np.ndarray, shift: float, greater: bool) -> tuple[float, float]:
    """t statistic and p-value for H1: mean(diff) > shift (greater) or < shift."""
    centred = diff - shift
    se = centred.std(ddof=1) / math.sqrt(diff.size)
    if se == 0:
        holds = centred.mean() > 0 if greater else centred.mean() < 0
        return (math.inf if greater else -math.inf) if holds else 0.0, 0.0 if holds else 1.0
    t = centred.mean() / se
    p = sps.t.sf(t, diff.size - 1) if greater else sps.t.cdf(t, diff.size - 1)
    return float(t), float(p)


def paired_greater(a, b, alpha: float = 0.05, margin: float = 0.0) -> TestResult:
    """One-sided paired t-test of H1: mean(a - b) > margin."""
    diff = paired_differences(a, b)
    t, p = one_sided_t(diff, margin, greater=True)
    return TestResult("paired t, a - b > margin", t, p, float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha)


def paired_less(a, b, alpha: float = 0.05, margin: float = 0.0) -> TestResult:
    """One-sided paired t-test of H1: mean(a - b) < margin (non-inferiority when margin > 0)."""
    diff = paired_differences(a, b)
    t, p = one_sided_t(diff, margin, greater=False)
    return TestResult("paired t, a - b < margin", t, p, float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha)


def tost_paired(a, b, margin: float, alpha: float = 0.05) -> TestResult:
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
    return TestResult(f"paired TOST, |a - b| < {margin:g}", worst[0], worst[1], float(diff.mean()),
                      confidence_interval(diff, alpha), diff.size, alpha)


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


@dataclass
class Verdict:
    """The outcome of one claim: supported or not, with the numbers behind it.

    Attributes
    ----------
    supported : bool
    statistic : str
        What was tested, in words (the test, its alternative, margin and correction).
    effect : float
        The headline effect size (its unit is stated in ``statistic``).
    ci : tuple of float
        Confidence interval of the headline effect.
    p_value : float
        The deciding p-value after correction (the largest adjusted p in an all-must-hold family).
    alpha : float
    seeds : list of int
    per_seed : dict
        Per-seed values of each arm, keyed by arm name.
    comparisons : list of dict
        Each test in the family: label, effect, CI, raw and adjusted p-value, rejected.
    summary : str
        One line for the report.
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

    def to_dict(self) -> dict:
        return asdict(self)


def family_verdict(tests: dict[str, TestResult], alpha: float, statistic: str, seeds,
                   per_seed: dict, summary: str = "") -> Verdict:
    """A claim that holds only if every test in the family rejects after Holm correction.

    The headline effect and CI are those of the weakest comparison (largest adjusted p-value).
    """
    labels = list(tests)
    adjusted, rejected = holm([tests[k].p_value for k in labels], alpha)
    comparisons = [{"label": k, "effect": tests[k].effect, "ci": list(tests[k].ci),
                    "statistic": tests[k].statistic, "p_value": tests[k].p_value,
                    "p_adjusted": adj, "rejected": rej}
                   for k, adj, rej in zip(labels, adjusted, rejected)]
    weakest = max(range(len(labels)), key=lambda i: (adjusted[i], -i))
    worst = tests[labels[weakest]]
    return Verdict(all(rejected), statistic, worst.effect, worst.ci, adjusted[weakest], alpha,
                   list(seeds), per_seed, comparisons, summary)
