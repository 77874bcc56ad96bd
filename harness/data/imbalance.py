"""Imbalanced train and test sets: class-count builders and seeded subset sampling.

The imbalance ratio ``r`` is the paper's: size of the rarest class divided by the size of the
most frequent class, so ``r`` lies in ``(0, 1]`` and ``r = 1`` is balanced.

Every builder returns a tuple of per-class counts, head class first (label 0) and tail class last,
so that label 1 is the minority in a binary task. Sampling those counts from a split is a separate
step (:func:`sample_indices`), seeded, and only ever draws from the split it is handed: train
subsets come from the train split and test sets from the held-out split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class ImbalanceError(ValueError):
    """An impossible imbalance request; the message names the value and the valid range."""


def validate_ratio(ratio: float) -> float:
    """Return ``ratio`` as a float if it is a valid imbalance ratio, else raise ImbalanceError."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise ImbalanceError(f"imbalance ratio must be a number in (0, 1]; got {ratio!r}") from None
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ImbalanceError(
            f"imbalance ratio must lie in (0, 1] (rarest class size / largest class size, "
            f"1 = balanced); got {ratio!r}. For 10x more majority than minority use 0.1."
        )
    return value


def profile_fractions(num_classes: int, ratio: float) -> list[float]:
    """Per-class size relative to the head class under the exponential (long-tail) profile."""
    if num_classes < 2:
        raise ImbalanceError(f"an imbalance profile needs at least 2 classes; got {num_classes}")
    ratio = validate_ratio(ratio)
    return [ratio ** (c / (num_classes - 1)) for c in range(num_classes)]


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> tuple[int, ...]:
    """Exponential long-tail class counts, exactly as LDAM-DRW computes them.

    ``count_c = int(n_max * ratio ** (c / (C - 1)))`` for ``c = 0 .. C-1``: class 0 keeps
    ``n_max`` samples and the last class keeps ``int(n_max * ratio)``.
    """
    ratio = validate_ratio(ratio)
    if n_max < 1:
        raise ImbalanceError(f"n_max must be a positive sample count; got {n_max}")
    return tuple(int(n_max * ratio ** (c / (num_classes - 1))) for c in range(num_classes))


def binary_counts(total: int, ratio: float) -> tuple[int, int]:
    """(majority, minority) counts at ratio ``r`` with a fixed total, as in Figure 1's protocol.

    The minority count is ``round(total * r / (1 + r))`` (at least 1) and the majority gets the
    rest, so sets at different ratios compare at equal data.
    """
    ratio = validate_ratio(ratio)
    if total < 2:
        raise ImbalanceError(f"a binary training set needs a total of at least 2; got {total}")
    # capped at half so that the minority never outnumbers the majority (round(1.5) == 2)
    minority = min(total // 2, max(1, round(total * ratio / (1 + ratio))))
    return total - minority, minority


def counts_for_total(total: int, num_classes: int, ratio: float) -> tuple[int, ...]:
    """Class counts at ``ratio`` with (about) ``total`` samples in all, head class first.

    Binary: :func:`binary_counts` (exact total). More classes: the exponential profile with the
    largest head count ``n_max`` whose counts sum to at most ``total`` (short by < C samples).
    """
    if num_classes == 2:
        return binary_counts(total, ratio)
    fractions = profile_fractions(num_classes, ratio)
    n_max = int(total / sum(fractions))
    while sum(long_tail_counts(n_max + 1, num_classes, ratio)) <= total:
        n_max += 1
    while n_max > 1 and sum(long_tail_counts(n_max, num_classes, ratio)) > total:
        n_max -= 1
    return long_tail_counts(n_max, num_classes, ratio)


def fixed_minority_counts(minority: int, majority_grid: Sequence[int]) -> list[tuple[int, int]]:
    """(majority, minority) counts with the minority fixed and the majority varied (Figure 3).

    The grid may go below ``minority``: then the "majority" class is the rarer one, which is how
    the grid spans both sides of balance.
    """
    if minority < 1 or any(m < 1 for m in majority_grid):
        raise ImbalanceError(f"class counts must be positive; got minority={minority}, "
                             f"majority grid={list(majority_grid)}")
    return [(int(m), int(minority)) for m in majority_grid]


def majority_grid(minority: int, factors: Sequence[float], available: int) -> list[int]:
    """Majority counts ``round(minority * f)`` for each factor, keeping those the split can supply."""
    counts = sorted({max(1, round(minority * f)) for f in factors})
    return [c for c in counts if c <= available]


def held_out_counts(available: Sequence[int], ratio: float) -> tuple[int, ...]:
    """Largest test set at ``ratio`` (exponential profile) that ``available`` counts allow.

    The head class size is the largest ``n`` with ``int(n * f_c) <= available[c]`` for every class,
    where ``f_c`` is the profile fraction, so the test set uses as much of the split as it can.
    """
    fractions = profile_fractions(len(available), ratio)
    n_max = min(largest_head(a, f) for a, f in zip(available, fractions))
    counts = tuple(int(n_max * f) for f in fractions)
    if min(counts) < 1:
        raise ImbalanceError(f"a test set at ratio {ratio} needs more data than {list(available)}")
    return counts


def largest_head(available: int, fraction: float) -> int:
    """Largest ``n`` with ``int(n * fraction) <= available`` (exact despite float rounding)."""
    n = max(0, math.ceil((available + 1) / fraction) - 1)
    while n > 0 and int(n * fraction) > available:
        n -= 1
    while int((n + 1) * fraction) <= available:
        n += 1
    return n


def class_counts(labels: np.ndarray, num_classes: int) -> tuple[int, ...]:
    return tuple(int(c) for c in np.bincount(labels, minlength=num_classes)[:num_classes])


def per_class_indices(labels: np.ndarray, counts: Sequence[int], draw) -> np.ndarray:
    """Indices with exactly ``counts[c]`` members of class ``c``, each class's members chosen by
    ``draw(c, pool, want)`` from its pool. Raises ImbalanceError, naming the class, when a class
    has fewer members than requested. Sorted, so the result depends only on the set drawn."""
    labels = np.asarray(labels)
    chosen = []
    for c, want in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if want > len(pool):
            raise ImbalanceError(
                f"class {c} has {len(pool)} samples in this split but {want} were requested; "
                f"lower the total size or the class count"
            )
        if want < 0:
            raise ImbalanceError(f"class {c}: count must be non-negative; got {want}")
        chosen.append(draw(c, pool, int(want)))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def sample_indices(labels: np.ndarray, counts: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset of ``labels`` with exactly ``counts[c]`` members of class ``c``,
    drawn without replacement from each class's pool with one generator (see
    :func:`per_class_indices` for errors and order)."""
    return per_class_indices(labels, counts, lambda c, pool, want: rng.choice(pool, size=want, replace=False))


def nested_indices(labels: np.ndarray, counts: Sequence[int], rng_for_class) -> np.ndarray:
    """Indices with ``counts[c]`` members of class ``c``: the first ``counts[c]`` of a random
    order of that class's pool drawn from ``rng_for_class(c)``, so that subsets with the same
    streams are nested (a larger count of a class contains every sample of a smaller one, and
    the other classes' samples do not depend on it). Errors and order as
    :func:`per_class_indices`."""
    return per_class_indices(labels, counts,
                             lambda c, pool, want: rng_for_class(c).permutation(pool)[:want])


def ratio_of(counts: Sequence[int]) -> float:
    """Imbalance ratio of a set of class counts: smallest over largest."""
    return min(counts) / max(counts)
