"""Predictions in strict fp32 on CUDA, checked on the CPU: every prediction path evaluates its
network with CUDA autocast off and TF32 off, and leaves the settings as it found them.

There is no GPU here, so the tests pretend: torch is told CUDA autocast is available (so that
``torch.autocast("cuda", ...)`` really switches the thread's CUDA autocast state, which a forward
hook reads), and the images report ``is_cuda`` (the old predictions enabled bf16 autocast for
CUDA images). The arithmetic itself stays on the CPU.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from harness import methods
from harness.nn import batches
from harness.nn.precision import strict_fp32
from tests.test_engine import small, tiny_images


class LooksLikeCuda(torch.Tensor):
    """A CPU tensor that says it is on CUDA (results of torch ops on it keep the class)."""

    @property
    def is_cuda(self):
        return True


def precision_now() -> tuple[bool, bool, bool]:
    """(CUDA autocast on, cuDNN TF32 allowed, cuBLAS TF32 allowed) at this moment."""
    return (torch.is_autocast_enabled("cuda"), torch.backends.cudnn.allow_tf32,
            torch.backends.cuda.matmul.allow_tf32)


STRICT = (False, False, False)


@contextmanager
def tf32_allowed():
    """TF32 allowed for convolutions and matmuls (cuDNN's default; "high" for matmuls), as a
    computation that must switch it off would find it; torch's settings restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


@contextmanager
def forward_precision():
    """Records :func:`precision_now` at every module forward (any module) within the block."""
    seen: list = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: seen.append(precision_now()))
    try:
        yield seen
    finally:
        handle.remove()


def pretend_cuda_autocast(monkeypatch) -> None:
    """From now on (until ``monkeypatch`` undoes it), ``torch.autocast("cuda",
    dtype=torch.bfloat16)`` switches CUDA autocast on, without a GPU."""
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)


@pytest.fixture
def pretend_cuda(monkeypatch):
    pretend_cuda_autocast(monkeypatch)


def test_pretending_cuda_really_switches_autocast_on(pretend_cuda):
    """The harness of the tests below: without it they would prove nothing."""
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cuda")
        with strict_fp32():
            assert precision_now() == STRICT
        assert torch.is_autocast_enabled("cuda")
    assert not torch.is_autocast_enabled("cuda")


@pytest.fixture(scope="module")
def trained():
    """Small networks trained on the CPU: ERM, Laplace (MAP and posterior), SGHMC."""
    x, y = tiny_images()
    return {"erm": small(epochs=2).fit(x, y),
            "laplace": small(epochs=2).fit(x, y, method=methods.create("laplace")),
            "sghmc": small(epochs=3).fit(x, y, method=methods.create("sghmc"))}


PREDICTIONS = {
    "predict_logits": lambda m, images: batches.predict_logits(m.net, images),
    "classifies_all": lambda m, images: batches.classifies_all(m.net, images, m.train_labels),
    "network_logits": lambda m, images: m.state.network_logits(images),
    "erm_probabilities": lambda m, images: m.method.probabilities(m.state, images),
    "laplace_probabilities": lambda m, images: m.method.probabilities(m.state, images),
    "laplace_map_variant": lambda m, images: m.method.variants(m.state, images),
    "sghmc_probabilities": lambda m, images: m.method.probabilities(m.state, images),
}
MODEL_OF = {"laplace_probabilities": "laplace", "laplace_map_variant": "laplace",
            "sghmc_probabilities": "sghmc"}


@pytest.mark.parametrize("inside_autocast", [False, True], ids=["plain", "inside-bf16-autocast"])
@pytest.mark.parametrize("path", sorted(PREDICTIONS))
def test_every_prediction_runs_in_strict_fp32(pretend_cuda, trained, path, inside_autocast):
    """Paired comparisons (Figure 8: Laplace and SGHMC against the MAP network) need every
    predictor in the same numerics: no path may evaluate under bf16 autocast or TF32, whether
    its images are on CUDA or it is called from inside the training loop's autocast."""
    model = trained[MODEL_OF.get(path, "erm")]
    model.state.forget_logits()  # network_logits must compute, not hand out a cached copy
    images = model.train_images.as_subclass(LooksLikeCuda)
    with tf32_allowed(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=inside_autocast):
        before = precision_now()
        with forward_precision() as seen:
            PREDICTIONS[path](model, images)
        assert seen and set(seen) == {STRICT}, path
        assert precision_now() == before == (inside_autocast, True, True)  # restored


def test_predictions_on_the_cpu_are_what_they_were():
    """Strict fp32 changes no number on the CPU: the logits equal a bare forward pass."""
    x, y = tiny_images()
    model = small(epochs=1).fit(x, y)
    model.net.eval()
    with torch.no_grad():
        expected = model.net(batches.network_inputs(model.train_images)).float()
    assert torch.equal(batches.predict_logits(model.net, model.train_images), expected)


def test_each_batch_leaks_no_setting_to_its_caller_between_batches(pretend_cuda):
    images = torch.zeros(5, 4, 4, 3, dtype=torch.uint8)
    with tf32_allowed(), torch.autocast("cuda", dtype=torch.bfloat16):
        inside, between = [], []
        for _ in batches.each_batch(lambda x: inside.append(precision_now()), images, batch_size=2):
            between.append(precision_now())
    assert inside == [STRICT] * 3 and between == [(True, True, True)] * 3


def test_strict_fp32_restores_the_settings_after_an_error():
    with tf32_allowed():
        with pytest.raises(RuntimeError, match="boom"):
            with strict_fp32():
                assert precision_now() == STRICT
                raise RuntimeError("boom")
        assert precision_now() == (False, True, True)
        assert torch.get_float32_matmul_precision() == "high"
    saved = torch.get_float32_matmul_precision()
    try:  # a "medium" comes back as "medium", not as the "high" that allow_tf32=True means
        torch.set_float32_matmul_precision("medium")
        with strict_fp32():
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(saved)


def test_normalize_standardizes_with_the_statistics_of_the_active_dataset():
    import numpy as np

    from harness import data

    x = torch.arange(2 * 4 * 4 * 3, dtype=torch.uint8).view(2, 4, 4, 3) * 5
    mean, std = torch.tensor([0.2, 0.4, 0.6]), torch.tensor([0.1, 0.2, 0.3])

    def loader(data_dir=None):
        images = np.zeros((2, 4, 4, 3), np.uint8)
        return data.Dataset("mine", images, np.arange(2), images, np.arange(2), ("a", "b"))

    expected = (x / 255 - mean) / std
    with (data.registered_dataset("mine", loader, image_statistics=((0.2, 0.4, 0.6), (0.1, 0.2, 0.3))),
          batches.standardized_by(*data.image_statistics("mine"))):
        assert torch.allclose(batches.normalize(x), expected, atol=1e-5)
        with batches.standardized_by(0.5, 1.0):  # blocks nest
            assert torch.allclose(batches.normalize(x), x / 255 - 0.5, atol=1e-6)
        assert torch.allclose(batches.network_inputs(x), expected.permute(0, 3, 1, 2), atol=1e-5)
    # Outside any block: the generic mean 0.5, std 0.25 for every channel, not CIFAR's.
    assert batches.active_image_statistics() == batches.GENERIC_IMAGE_STATISTICS == ((0.5,), (0.25,))
    assert torch.allclose(batches.normalize(x), (x / 255 - 0.5) / 0.25, atol=1e-5)
    scale, shift = batches.normalization_constants(x.device)
    assert scale.shape == shift.shape == (3,)  # the generic value for each of the RGB channels


def test_cifar_statistics_standardize_exactly_as_before():
    from harness import data

    x = torch.randint(0, 256, (3, 5, 5, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(data.CIFAR_MEAN), torch.tensor(data.CIFAR_STD)
    before = torch.addcmul(-mean / std, x.float(), 1 / (255 * std))  # the formula the networks used
    with batches.standardized_by(*data.image_statistics("cifar10")):
        assert torch.equal(batches.normalize(x), before)


def test_the_statistics_are_per_thread_and_checked():
    import threading

    seen = []
    with batches.standardized_by(0.3, 0.3):
        worker = threading.Thread(target=lambda: seen.append(batches.active_image_statistics()))
        worker.start()
        worker.join()
    assert seen == [batches.GENERIC_IMAGE_STATISTICS]  # another thread's run has its own
    with (pytest.raises(ValueError, match="std must be finite and greater than 0"),
          batches.standardized_by(0.5, -1)):
        pass
    with (batches.standardized_by((0.5, 0.5), (0.25, 0.25)),
          pytest.raises(ValueError, match="statistics have 2 channels but the images have 3")):
        batches.normalize(torch.zeros(1, 2, 2, 3, dtype=torch.uint8))
