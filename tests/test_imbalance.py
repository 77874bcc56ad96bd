"""Invariants of the imbalance builders and the seeded subset sampler (hypothesis)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data import imbalance

ratios = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)


@given(n_max=st.integers(1, 10_000), classes=st.integers(2, 20), r=ratios)
def test_long_tail_counts_match_ldam_drw_formula(n_max, classes, r):
    counts = imbalance.long_tail_counts(n_max, classes, r)
    assert counts == tuple(int(n_max * r ** (c / (classes - 1))) for c in range(classes))
    assert counts[0] == n_max and counts[-1] == int(n_max * r)
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_long_tail_counts_cifar10_at_ratio_one_hundredth():
    # LDAM-DRW's CIFAR-10-LT at imbalance 0.01: 5000 down to 50.
    assert imbalance.long_tail_counts(5000, 10, 0.01) == (
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)


@given(total=st.integers(2, 100_000), r=ratios)
def test_binary_counts_keep_total_and_ratio(total, r):
    majority, minority = imbalance.binary_counts(total, r)
    assert majority + minority == total
    assert 1 <= minority <= majority
    # rounding the minority moves the ratio by at most one sample's worth
    assert abs(minority - total * r / (1 + r)) <= 0.5 + 1e-9 or minority == 1


@given(available=st.tuples(st.integers(1, 5000), st.integers(1, 5000)), r=ratios)
def test_held_out_counts_fit_the_split_and_use_it(available, r):
    try:
        counts = imbalance.held_out_counts(available, r)
    except imbalance.ImbalanceError:  # only when even the whole head class gives no tail sample
        assert int(available[0] * r) < 1
        return
    assert all(c <= a for c, a in zip(counts, available))
    assert counts[1] == int(counts[0] * r)
    # as large as the split allows: one more head sample would overflow some class
    assert int((counts[0] + 1) * r) > available[1] or counts[0] + 1 > available[0]


@settings(max_examples=60)
@given(counts=st.lists(st.integers(0, 40), min_size=2, max_size=5), seed=st.integers(0, 2**31))
def test_sample_indices_exact_counts_unique_and_deterministic(counts, seed):
    labels = np.repeat(np.arange(len(counts)), 50)
    np.random.default_rng(1).shuffle(labels)
    idx = imbalance.sample_indices(labels, counts, np.random.default_rng(seed))
    assert len(np.unique(idx)) == len(idx) == sum(counts)
    assert np.bincount(labels[idx], minlength=len(counts)).tolist() == counts
    again = imbalance.sample_indices(labels, counts, np.random.default_rng(seed))
    assert np.array_equal(idx, again)


def test_sample_indices_names_the_short_class():
    labels = np.array([0] * 10 + [1] * 3)
    with pytest.raises(imbalance.ImbalanceError, match="class 1 has 3 samples"):
        imbalance.sample_indices(labels, (5, 4), np.random.default_rng(0))


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, math.nan, "a lot", None])
def test_ratio_outside_unit_interval_is_rejected(bad):
    with pytest.raises(imbalance.ImbalanceError, match=r"\(0, 1\]"):
        imbalance.validate_ratio(bad)


def test_majority_grid_spans_both_sides_of_balance_and_respects_availability():
    grid = imbalance.majority_grid(500, (0.2, 0.6, 2, 6, 20, 100), available=24_720)
    assert grid == [100, 300, 1000, 3000, 10000]
    assert min(grid) < 500 < max(grid)


def test_fixed_minority_counts_keep_minority():
    assert imbalance.fixed_minority_counts(500, [100, 1000]) == [(100, 500), (1000, 500)]
    with pytest.raises(imbalance.ImbalanceError):
        imbalance.fixed_minority_counts(0, [100])


@given(total=st.integers(100, 50_000), classes=st.integers(3, 12), r=ratios)
def test_counts_for_total_follow_the_profile_and_stay_within_total(total, classes, r):
    counts = imbalance.counts_for_total(total, classes, r)
    assert counts == imbalance.long_tail_counts(counts[0], classes, r)
    assert total - 2 * classes <= sum(counts) <= total  # as close as the int() rounding allows
    assert sum(imbalance.long_tail_counts(counts[0] + 1, classes, r)) > total


def test_counts_for_total_binary_is_exact():
    assert imbalance.counts_for_total(10_000, 2, 0.1) == imbalance.binary_counts(10_000, 0.1)
