"""Resamplers from imbalanced-learn (not hand-written): SMOTE and random undersampling."""

from __future__ import annotations

import numpy as np

from .base import Method, TrainPlan, register


def seed_from(rng: np.random.Generator) -> int:
    """An integer seed for imbalanced-learn, drawn from the run's method stream."""
    return int(rng.integers(2**31 - 1))


@register
class SMOTE(Method):
    """SMOTE (Chawla et al. 2002): every minority class is topped up to the largest class's
    count with points interpolated between a row and one of its ``k_neighbors`` nearest
    same-class neighbours. Feature vectors only (tabular models).

    On data with categorical columns (``categorical``: one-hot blocks, e.g. Adult's eight
    categorical variables) it is SMOTE-NC (``imblearn.over_sampling.SMOTENC``, Chawla et al.'s
    variant for mixed data): each block is one categorical value, a synthetic row takes the
    most frequent value among the neighbours, and the row stays one-hot; interpolating the
    one-hot columns would make fractional categories that no real row has. Without categorical
    columns it is ``imblearn.over_sampling.SMOTE``.
    """

    name = "smote"
    zoo = True  # a baseline of the methods-under-test zoo
    version = "2"  # 2: SMOTE-NC on data with categorical columns
    requires = frozenset({"rows", "features"})
    reference = "Chawla et al. 2002, via imbalanced-learn"
    libraries = ("imblearn.over_sampling", "sklearn.preprocessing", "scipy.sparse")
    settings = {"k_neighbors": 5}  # neighbours a synthetic point may interpolate towards (imblearn's default)

    def resample(self, x, y, rng, categorical=()):
        from imblearn.over_sampling import SMOTE as ImblearnSMOTE
        from imblearn.over_sampling import SMOTENC

        smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
        if smallest < 2:
            raise ValueError(f"SMOTE needs at least 2 rows of every class; the rarest has {smallest}")
        k = min(self.settings["k_neighbors"], smallest - 1)
        if not categorical:
            x_new, y_new = ImblearnSMOTE(k_neighbors=k, random_state=seed_from(rng)).fit_resample(x, y)
            return np.asarray(x_new, dtype=x.dtype), np.asarray(y_new, dtype=np.int64), None, None
        coded, continuous = from_one_hot(x, categorical)
        sampler = SMOTENC(categorical_features=list(range(len(continuous), coded.shape[1])),
                          categorical_encoder=dense_inverse_one_hot_encoder(),
                          k_neighbors=k, random_state=seed_from(rng))
        x_new, y_new = sampler.fit_resample(coded, y)
        return (to_one_hot(np.asarray(x_new), x.shape[1], x.dtype, categorical, continuous),
                np.asarray(y_new, dtype=np.int64), None, None)


@register
class Undersample(Method):
    """Random undersampling to balance (``imblearn.under_sampling.RandomUnderSampler``): every
    class keeps as many rows as the rarest class has, drawn without replacement."""

    name = "undersample"
    zoo = True  # a baseline of the methods-under-test zoo
    reference = "imbalanced-learn RandomUnderSampler"
    libraries = ("imblearn.under_sampling",)

    def rows(self, y, rng):
        from imblearn.under_sampling import RandomUnderSampler

        sampler = RandomUnderSampler(random_state=seed_from(rng))
        sampler.fit_resample(np.zeros((len(y), 1)), y)  # only the labels decide which rows stay
        return TrainPlan(np.sort(sampler.sample_indices_))


def dense_inverse_one_hot_encoder():
    """imblearn's default categorical encoder for SMOTENC, decoding the resampled rows from a
    dense array: SMOTENC hands ``inverse_transform`` a sparse matrix, which scikit-learn decodes
    with scipy's row-by-row argmax (0.5 s of a 0.7 s resample of 10,000 Adult rows); dense, it is
    one vectorized argmax per variable. The same rows come out (tests/test_longtail.py)."""
    from scipy import sparse
    from sklearn.preprocessing import OneHotEncoder

    class DenseInverseOneHotEncoder(OneHotEncoder):
        def inverse_transform(self, X):
            return super().inverse_transform(X.toarray() if sparse.issparse(X) else X)

    return DenseInverseOneHotEncoder(handle_unknown="ignore")


def from_one_hot(x: np.ndarray, blocks) -> tuple[np.ndarray, list[int]]:
    """``x`` with each one-hot block replaced by one column of its level (the index of its 1
    within the block; -1 where the row has none), after the continuous columns; and the
    indices of those continuous columns."""
    in_blocks = {c for block in blocks for c in block}
    continuous = [c for c in range(x.shape[1]) if c not in in_blocks]
    levels = [np.where(x[:, list(b)].max(1) > 0, x[:, list(b)].argmax(1), -1) for b in blocks]
    return np.column_stack([x[:, continuous].astype(np.float64)] + levels), continuous


def to_one_hot(coded: np.ndarray, width: int, dtype, blocks, continuous: list[int]) -> np.ndarray:
    """The inverse of :func:`from_one_hot`: continuous columns back in place, each block's level
    column back to its one-hot columns."""
    out = np.zeros((len(coded), width), dtype=dtype)
    out[:, continuous] = coded[:, :len(continuous)]
    rows = np.arange(len(coded))
    for j, block in enumerate(blocks):
        level = coded[:, len(continuous) + j].astype(int)
        has = level >= 0
        out[rows[has], np.asarray(block)[level[has]]] = 1
    return out
