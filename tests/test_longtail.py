"""The long-tail baselines against their formulas, and the identities between them."""

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
        method = methods.create("logit_adjustment", logit_adjustment_tau=tau)
        assert torch.allclose(method.adjust_logits(logits, state()), logits - tau * prior.log())
    # A uniform prior changes nothing; tau = 0 is ERM's predictive.
    uniform = state(torch.tensor([50, 50, 50, 50]))
    assert torch.equal(methods.create("logit_adjustment").adjust_logits(logits, uniform).argmax(1),
                       logits.argmax(1))
    assert torch.equal(methods.create("logit_adjustment", logit_adjustment_tau=0.0)
                       .adjust_logits(logits, state()), logits)
    assert methods.get("logit_adjustment").trains_like == "erm"


def test_logit_adjusted_loss_is_cross_entropy_of_shifted_logits():
    logits, labels = batch()
    prior = COUNTS.float() / COUNTS.sum()
    got = methods.create("logit_adjusted_loss", logit_adjusted_loss_tau=0.7).loss(logits, labels, state())
    want = F.cross_entropy(logits + 0.7 * prior.log(), labels, reduction="none")
    assert torch.allclose(got, want)
    erm = methods.create("erm").loss(logits, labels, state())
    at_zero = methods.create("logit_adjusted_loss", logit_adjusted_loss_tau=0.0).loss(logits, labels, state())
    assert torch.allclose(at_zero, erm)


def test_logit_adjusted_loss_at_tau_one_is_balanced_softmax():
    logits, labels = batch(seed=3)
    adjusted = methods.create("logit_adjusted_loss", logit_adjusted_loss_tau=1.0).loss(logits, labels, state())
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
    logits, labels = batch()
    shifted = logits.clone()
    shifted[torch.arange(len(labels)), labels] -= margins[labels]
    assert torch.allclose(method.loss(logits, labels, state()),
                          F.cross_entropy(shifted, labels, reduction="none"))
    # Zero margin is plain cross-entropy.
    zero = methods.create("ldam_drw", ldam_max_margin=0.0)
    assert torch.allclose(zero.loss(logits, labels, state()), F.cross_entropy(logits, labels, reduction="none"))


def test_ldam_defers_re_weighting_to_the_late_epochs():
    method, s = methods.create("ldam_drw"), state(epochs=10)
    for epoch in range(8):
        method.epoch_start(s, epoch)
        assert s.weights is None
    method.epoch_start(s, 8)  # floor(0.8 * 10)
    per_class = effective_number_weights(COUNTS.numpy(), 0.9999)
    assert torch.allclose(s.weights, torch.as_tensor(per_class, dtype=torch.float32)[s.labels])
    assert float(s.weights[s.labels == 3][0]) > float(s.weights[s.labels == 0][0])


def test_focal_loss_formula_and_gamma_zero_is_cross_entropy():
    logits, labels = batch()
    ce = F.cross_entropy(logits, labels, reduction="none")
    p = logits.softmax(1)[torch.arange(len(labels)), labels]
    assert torch.allclose(methods.create("focal").loss(logits, labels, state()), (1 - p) ** 2 * ce, atol=1e-6)
    assert torch.allclose(methods.create("focal", focal_gamma=0.0).loss(logits, labels, state()), ce)


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
    cb = methods.create("class_balanced", class_balanced_beta=1 - 1e-9).rows(y, None).sample_weight
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
