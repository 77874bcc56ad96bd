"""The long-tail baselines against their formulas, and the identities between them."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness import methods
from harness.methods.base import TrainingState
from harness.methods.longtail import effective_number_weights

COUNTS = torch.tensor([500, 120, 30, 6])


def state(counts=COUNTS, labels=None, epochs=10):
    labels = labels if labels is not None else torch.repeat_interleave(torch.arange(len(counts)), counts)
    return TrainingState(net=None, labels=labels, num_classes=len(counts), class_counts=counts,
                         hp={}, seed=0, epochs=epochs)


def batch(n=64, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g) * 3, torch.randint(0, classes, (n,), generator=g)


def test_post_hoc_logit_adjustment_subtracts_tau_log_prior():
    logits, _ = batch()
    prior = COUNTS.float() / COUNTS.sum()
    for tau in (1.0, 0.5):
        method = methods.create("logit_adjustment", tau=tau)
        assert torch.allclose(method.adjust_logits(logits, state()), logits - tau * prior.log())
    # A uniform prior changes nothing; tau = 0 is ERM's predictive.
    uniform = state(torch.tensor([50, 50, 50, 50]))
    assert torch.equal(methods.create("logit_adjustment").adjust_logits(logits, uniform).argmax(1),
                       logits.argmax(1))
    assert torch.equal(methods.create("logit_adjustment", tau=0.0)
                       .adjust_logits(logits, state()), logits)
    assert methods.get("logit_adjustment").trains_like == "erm"


def test_logit_adjusted_loss_is_cross_entropy_of_shifted_logits():
    logits, labels = batch()
    prior = COUNTS.float() / COUNTS.sum()
    got = methods.create("logit_adjusted_loss", tau=0.7).loss(logits, labels, state())
    want = F.cross_entropy(logits + 0.7 * prior.log(), labels, reduction="none")
    assert torch.allclose(got, want)
    erm = methods.create("erm").loss(logits, labels, state())
    at_zero = methods.create("logit_adjusted_loss", tau=0.0).loss(logits, labels, state())
    assert torch.allclose(at_zero, erm)


def test_logit_adjusted_loss_at_tau_one_is_balanced_softmax():
    logits, labels = batch(seed=3)
    adjusted = methods.create("logit_adjusted_loss", tau=1.0).loss(logits, labels, state())
    balanced = methods.create("balanced_softmax").loss(logits, labels, state())
    assert torch.allclose(adjusted, balanced, atol=1e-5)
    want = -(logits + COUNTS.float().log()).log_softmax(1)[torch.arange(len(labels)), labels]
    assert torch.allclose(balanced, want, atol=1e-5)


def test_ldam_margins_follow_the_inverse_fourth_root_of_counts():
    method = methods.create("ldam_drw")
    margins = method.margins(state())
    assert float(margins.max()) == pytest.approx(0.5) and int(margins.argmax()) == 3
    ratio = (COUNTS.float() ** -0.25) / (COUNTS.float() ** -0.25).max()
    assert torch.allclose(margins, 0.5 * ratio)
    cosines = torch.rand(64, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.arange(64) % 4
    shifted = cosines.clone()
    shifted[torch.arange(len(labels)), labels] -= margins[labels]
    assert torch.allclose(method.loss(cosines, labels, state()),
                          F.cross_entropy(30 * shifted, labels, reduction="none"))
    # Zero margin is the cross-entropy of the scaled cosines.
    zero = methods.create("ldam_drw", max_margin=0.0)
    assert torch.allclose(zero.loss(cosines, labels, state()),
                          F.cross_entropy(30 * cosines, labels, reduction="none"))


def test_ldam_loss_by_hand():
    """Two classes with 16 and 1 rows: margins 0.5 / 16^(1/4) = 0.25 and 0.5. A class-1 row whose
    cosines are (0.2, 0.6): logits 30 * (0.2, 0.6 - 0.5) = (6, 3), loss log(1 + e^3)."""
    method = methods.create("ldam_drw")
    s = state(torch.tensor([16, 1]))
    assert torch.allclose(method.margins(s), torch.tensor([0.25, 0.5]))
    loss = method.loss(torch.tensor([[0.2, 0.6], [0.3, 0.1]]), torch.tensor([1, 0]), s)
    # the class-0 row: logits 30 * (0.3 - 0.25, 0.1) = (1.5, 3), loss log(1 + e^1.5)
    assert loss.tolist() == pytest.approx([math.log(1 + math.exp(3)), math.log(1 + math.exp(1.5))],
                                          rel=1e-5)


def test_ldam_uses_a_cosine_classifier_scaled_by_30():
    from harness.nn.networks import CosineClassifier, small_cnn

    torch.manual_seed(0)
    net = small_cnn(4, width=4)
    s = TrainingState(net=net, labels=torch.tensor([0, 1, 2, 3]), num_classes=4,
                      class_counts=COUNTS, hp={}, seed=0)
    assert methods.create("ldam_drw").prepare(s) == {"classifier": "cosine"}
    head = net[-1]
    assert isinstance(head, CosineClassifier) and head.weight.shape == (4, 16)
    logits = net(torch.randn(3, 3, 8, 8))
    features = net[:-1](torch.randn(3, 3, 8, 8))
    assert logits.abs().max() <= 1 + 1e-6  # cosines
    by_hand = (features / features.norm(dim=1, keepdim=True)) @ (head.weight / head.weight.norm(dim=1, keepdim=True)).T
    assert torch.allclose(head(features), by_hand, atol=1e-6)
    assert methods.get("ldam_drw").settings["scale"] == 30.0


def test_ldam_defers_re_weighting_and_normalizes_by_the_batch_weight_sum():
    """From floor(0.8 * epochs) on, a batch's loss is sum(w_i l_i) / sum(w_i) with Cui et al.'s
    weights: what F.cross_entropy(weight=...) computes in Cao et al.'s code. Before, plain LDAM."""
    method, s = methods.create("ldam_drw"), state(epochs=10)
    cosines = torch.rand(64, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.tensor([0] * 40 + [1] * 14 + [2] * 8 + [3] * 2)
    plain = method.loss(cosines, labels, s)
    for epoch in range(8):
        method.epoch_start(s, epoch)
        assert torch.equal(method.loss(cosines, labels, s), plain)
    method.epoch_start(s, 8)  # floor(0.8 * 10)
    per_class = torch.as_tensor(effective_number_weights(COUNTS.numpy(), 0.9999), dtype=torch.float32)
    shifted = cosines - F.one_hot(labels, 4) * method.margins(s)[labels, None]
    expected = F.cross_entropy(30 * shifted, labels, weight=per_class)  # reduction "mean"
    assert method.loss(cosines, labels, s).mean() == pytest.approx(float(expected), rel=1e-5)
    w = per_class[labels]
    assert float(expected) == pytest.approx(float((w * plain).sum() / w.sum()), rel=1e-5)
    assert s.weights is None  # the row weights are not touched: no double weighting


def test_focal_loss_formula_and_gamma_zero_is_cross_entropy():
    logits, labels = batch()
    ce = F.cross_entropy(logits, labels, reduction="none")
    p = logits.softmax(1)[torch.arange(len(labels)), labels]
    assert torch.allclose(methods.create("focal").loss(logits, labels, state()), (1 - p) ** 2 * ce, atol=1e-6)
    assert torch.allclose(methods.create("focal", gamma=0.0).loss(logits, labels, state()), ce)


def test_effective_number_weights():
    weights = effective_number_weights([500, 120, 30, 6], 0.99)
    raw = (1 - 0.99) / (1 - 0.99 ** np.array([500, 120, 30, 6]))
    assert np.allclose(weights, raw * 4 / raw.sum()) and weights.sum() == pytest.approx(4)
    # beta -> 0: every class weighs the same; beta -> 1: inverse class frequency.
    assert np.allclose(effective_number_weights([500, 6], 0.0), [1, 1])
    near_one = effective_number_weights([500, 100], 1 - 1e-9)
    assert near_one[1] / near_one[0] == pytest.approx(5, rel=1e-4)


def test_class_balanced_at_beta_near_one_is_inverse_frequency_reweighting():
    y = np.array([0] * 90 + [1] * 10)
    cb = methods.create("class_balanced", beta=1 - 1e-9).rows(y, None).sample_weight
    rw = methods.create("reweight").rows(y, None).sample_weight
    assert np.allclose(cb / cb[0], rw / rw[0], rtol=1e-5)


def test_smote_and_undersampling_come_from_imbalanced_learn():
    rng = np.random.default_rng(0)
    y = np.array([0] * 80 + [1] * 12)
    x = rng.normal(size=(92, 2)) + 4 * y[:, None]
    xs, ys, weights, _ = methods.create("smote").resample(x, y, np.random.default_rng(1))
    assert np.bincount(ys).tolist() == [80, 80] and weights is None
    new = xs[len(x):]
    assert (ys[len(x):] == 1).all()
    low, high = x[y == 1].min(0), x[y == 1].max(0)  # interpolations stay in the minority's hull
    assert ((new >= low - 1e-9) & (new <= high + 1e-9)).all()
    xu, yu, _, _ = methods.create("undersample").resample(x, y, np.random.default_rng(1))
    assert np.bincount(yu).tolist() == [12, 12]
    assert (yu == 1).sum() == 12 and {tuple(r) for r in xu[yu == 1]} == {tuple(r) for r in x[y == 1]}
    with pytest.raises(ValueError, match="at least 2 rows"):
        methods.create("smote").resample(x[:81], y[:81], np.random.default_rng(1))


def mixed_rows(seed=0):
    """Two continuous columns, then a 3-level and a 2-level categorical variable one-hot encoded
    (columns 2-4 and 5-6): 80 majority rows, 12 minority rows."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * 80 + [1] * 12)
    first, second = rng.integers(0, 3, len(y)), rng.integers(0, 2, len(y))
    x = np.column_stack([rng.normal(size=(len(y), 2)) + 4 * y[:, None],
                         np.eye(3)[first], np.eye(2)[second]]).astype(np.float32)
    return x, y, ((2, 3, 4), (5, 6))


def test_smote_keeps_categorical_columns_one_hot():
    """With one-hot blocks declared (Adult's categorical variables), SMOTE is SMOTE-NC: every
    synthetic row has exactly one 1 per block and no fractional category; its continuous
    columns are interpolated inside the minority's hull."""
    x, y, blocks = mixed_rows()
    xs, ys, weights, _ = methods.create("smote").resample(x, y, np.random.default_rng(1), categorical=blocks)
    assert np.bincount(ys).tolist() == [80, 80] and weights is None and xs.dtype == x.dtype
    assert np.array_equal(xs[:len(x)], x)  # the real rows, unchanged
    new = xs[len(x):]
    for block in blocks:
        assert set(np.unique(new[:, list(block)])) <= {0.0, 1.0}
        assert (new[:, list(block)].sum(1) == 1).all()
    low, high = x[y == 1, :2].min(0), x[y == 1, :2].max(0)
    assert ((new[:, :2] >= low - 1e-6) & (new[:, :2] <= high + 1e-6)).all()
    # Plain SMOTE on the same rows interpolates the one-hot columns: fractional categories.
    plain, _, _, _ = methods.create("smote").resample(x, y, np.random.default_rng(1))
    assert not set(np.unique(plain[len(x):, 2:])) <= {0.0, 1.0}


def test_one_hot_coding_round_trips():
    from harness.methods.resampling import from_one_hot, to_one_hot

    x, _, blocks = mixed_rows(3)
    x[0, 2:5] = 0  # a level unseen in training encodes as all zeros, and stays so
    coded, continuous = from_one_hot(x, blocks)
    assert continuous == [0, 1] and coded.shape == (len(x), 4) and coded[0, 2] == -1
    assert np.array_equal(to_one_hot(coded, x.shape[1], x.dtype, blocks, continuous), x)


def test_adult_and_covtype_declare_their_one_hot_blocks():
    from harness import data

    for name, relative in (("adult", "adult/adult.data"), ("covtype", "covtype/covtype-sample.csv.gz")):
        if data.locate(relative) is None:
            continue
        dataset = data.load(name)
        assert dataset.categorical, name
        for block in dataset.categorical:  # every training row has exactly one level per block
            assert (dataset.x_train[:, list(block)].sum(1) == 1).all(), (name, block)
    assert data.load("toy2d").categorical == ()


def test_smote_nc_decodes_densely_to_the_same_rows_as_imbalanced_learns_default():
    from imblearn.over_sampling import SMOTENC

    from harness.methods.resampling import dense_inverse_one_hot_encoder, from_one_hot

    x, y, blocks = mixed_rows(5)
    coded, continuous = from_one_hot(x, blocks)
    kwargs = dict(categorical_features=[2, 3], k_neighbors=5, random_state=7)
    default = SMOTENC(**kwargs).fit_resample(coded, y)
    dense = SMOTENC(categorical_encoder=dense_inverse_one_hot_encoder(), **kwargs).fit_resample(coded, y)
    assert np.array_equal(default[0], dense[0]) and np.array_equal(default[1], dense[1])
