"""Resamplers from imbalanced-learn (not hand-written): SMOTE and random undersampling."""

from __future__ import annotations

import numpy as np

from .base import Method, TrainPlan, register


def seed_from(rng: np.random.Generator) -> int:
    """An integer seed for imbalanced-learn, drawn from the run's method stream."""
    return int(rng.integers(2**31 - 1))


@register
class Undersample(Method):
    """Random undersampling to balance (``imblearn.under_sampling.RandomUnderSampler``): every
    class keeps as many rows as the rarest class has, drawn without replacement."""

    name = "undersample"
    reference = "imbalanced-learn RandomUnderSampler"

    def rows(self, y, rng):
        from imblearn.under_sampling import RandomUnderSampler

        sampler = RandomUnderSampler(random_state=seed_from(rng))
        sampler.fit_resample(np.zeros((len(y), 1)), y)  # only the labels decide which rows stay
        return TrainPlan(np.sort(sampler.sample_indices_))


@register
class SMOTE(Method):
    """SMOTE (Chawla et al. 2002; ``imblearn.over_sampling.SMOTE``): every minority class is
    topped up to the largest class's count with points interpolated between a row and one of its
    ``smote_k_neighbors`` nearest same-class neighbours. Feature vectors only (tabular models)."""

    name = "smote"
    requires = frozenset({"rows", "features"})
    reference = "Chawla et al. 2002, via imbalanced-learn"
    settings = {"smote_k_neighbors": 5}  # neighbours a synthetic point may interpolate towards (imblearn's default)

    def resample(self, x, y, rng):
        from imblearn.over_sampling import SMOTE as ImblearnSMOTE

        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        if smallest < 2:
            raise ValueError(f"SMOTE needs at least 2 rows of every class; the rarest has {smallest}")
        k = min(self.settings["smote_k_neighbors"], smallest - 1)
        x_new, y_new = ImblearnSMOTE(k_neighbors=k, random_state=seed_from(rng)).fit_resample(x, y)
        return np.asarray(x_new, dtype=x.dtype), np.asarray(y_new, dtype=np.int64), None, None
