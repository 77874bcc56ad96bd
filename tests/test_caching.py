"""The per-object cache: one value per object (and tag), the object held, oldest out first."""

import gc

import numpy as np
import pytest

from harness.caching import ObjectCache


def test_a_value_is_computed_once_per_object_and_tag():
    cache, calls = ObjectCache(), []

    def compute(x):
        calls.append(x)
        return x.sum()

    a, b = np.arange(3), np.arange(3)  # equal, but two objects: two values
    assert cache.get(a, compute) == cache.get(a, compute) == cache.get(b, compute) == 3
    assert cache.get(a, lambda x: x * 2, tag=2).tolist() == [0, 2, 4]
    assert len(calls) == 2 and calls[0] is a and calls[1] is b
    assert len(cache) == 3 and a in cache and np.arange(3) not in cache


def test_the_object_is_held_so_that_its_id_is_never_another_objects():
    cache = ObjectCache()
    cache.get(np.ones(4), lambda x: "ones")
    gc.collect()
    for _ in range(100):  # a freed array's id would soon be handed to a new one
        assert cache.get(np.zeros(4), lambda x: "zeros") == "zeros"


def test_the_oldest_entry_goes_first_beyond_maxsize_and_clear_forgets_all():
    cache = ObjectCache(maxsize=2)
    a, b, c = (np.arange(n) for n in (1, 2, 3))
    for x in (a, b, a, c):  # a second get of a does not renew it: first in, first out
        cache.get(x, len)
    assert a not in cache and b in cache and c in cache
    cache.get(a, lambda x: "again")
    assert cache.get(a, len) == "again" and b not in cache
    cache.clear()
    assert len(cache) == 0


def test_a_failed_computation_leaves_the_cache_as_it_was():
    cache = ObjectCache(maxsize=1)
    kept = np.arange(2)
    cache.get(kept, len)

    def fails(x):
        raise ValueError("no")

    with pytest.raises(ValueError):
        cache.get(np.arange(3), fails)
    assert kept in cache and len(cache) == 1
    with pytest.raises(ValueError, match="maxsize must be at least 1"):
        ObjectCache(maxsize=0)
