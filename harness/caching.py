"""Per-object caches: a value computed once per object (per tag), for the last few objects.

Below every sub-package of the harness (``harness.data`` imports it): it imports nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class ObjectCache:
    """Values computed from objects, keyed by the objects' identity (``id``), oldest out first.

    For objects that cannot or should not be hashed by value (numpy arrays, tensors, datasets):
    the runs that share a trained network ask for the same arrays and get one conversion, one
    set of logits, one downsampled copy.

    Each entry holds its object as well as its value. An ``id`` is unique only among objects
    alive at the same time: were the object freed, a new one could be given its id and be
    handed the old object's value. Holding it keeps it alive, so its id stays its own for as
    long as the entry exists.

    Parameters
    ----------
    maxsize : int, optional
        The most entries kept; beyond it the one added first is dropped (first in, first out).
        None (the default) keeps every entry until :meth:`clear`.
    """

    def __init__(self, maxsize: int | None = None):
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"maxsize must be at least 1 (or None for no limit); got {maxsize}")
        self.maxsize = maxsize
        self._entries: dict[tuple[int, Hashable], tuple[Any, Any]] = {}  # key -> (obj, value)

    def get(self, obj: Any, compute: Callable[[Any], Any], tag: Hashable = None) -> Any:
        """The value for ``obj`` (and ``tag``): ``compute(obj)``, called only the first time.

        Parameters
        ----------
        obj : object
            What the value is computed from; the cache holds it while its entry lasts.
        compute : callable
            ``compute(obj) -> value``. When it raises, the cache is left as it was.
        tag : hashable, optional
            Tells apart values computed from one object in different ways (e.g. a size).

        Returns
        -------
        object
            The cached value itself (not a copy): a caller that changes it changes the cache.
        """
        key = (id(obj), tag)
        entry = self._entries.get(key)
        if entry is None:
            value = compute(obj)
            if self.maxsize is not None and len(self._entries) >= self.maxsize:
                self._entries.pop(next(iter(self._entries)))
            entry = self._entries[key] = (obj, value)
        return entry[1]

    def clear(self) -> None:
        """Forget every entry (and release the objects held)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, obj: Any) -> bool:
        """Whether some value is cached for ``obj`` (under any tag)."""
        return any(held is obj for held, _ in self._entries.values())
