"""Image batches on the device: standardization, augmentation, and running a network
over batches. Everything here is a pure function of its tensors (no training state), shared by
the engine's training loop and by the methods' predictives.

The training set is one uint8 NHWC tensor on the device. Each step gathers a batch, then draws a
random crop offset and a horizontal flip *per image* and applies them to the whole batch with one
gather (no DataLoader, no per-image PIL transforms). NHWC memory is what PyTorch calls
channels_last, so the gathered batch feeds channels_last convolutions without a copy.

Predictions are fp32. Training runs under bf16 autocast on CUDA, but every prediction (test and
training logits, probabilities, posterior predictives, a run's variants, the fit check) goes
through :func:`each_batch`, which evaluates each batch in strict fp32
(:func:`harness.nn.precision.strict_fp32`: no autocast, no TF32). Paired comparisons set one
predictor against another (Laplace's and SGHMC's predictives against the MAP network, Figure 8);
with bf16 on one side and fp32 on the other, argmax flips on near-ties would enter the gain.
Evaluation is a small fraction of a run's compute, so fp32 costs little.

Standardization uses the statistics of the dataset a run trains on: the run's code enters
``with standardized_by(mean, std):`` (the dataset's registered
:func:`harness.data.image_statistics`) around training and prediction, and :func:`normalize`
reads them from a context variable (per thread, so concurrent runs each see their own). Outside
any such block the statistics are a neutral generic, mean 0.5 and std 0.25 for every channel
(:data:`GENERIC_IMAGE_STATISTICS`), which maps 0..255 pixels to -2..2: not CIFAR's, so that no
dataset is silently standardized with another dataset's facts.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from functools import lru_cache

import torch
import torch.nn.functional as F

# Dataset facts live with the dataset; a run picks its dataset's statistics (standardized_by).
from ..data import ImageStatistics, checked_image_statistics
from .precision import strict_fp32

# (mean, std) per channel on the 0..1 scale, used where no standardized_by block is active.
GENERIC_IMAGE_STATISTICS: ImageStatistics = ((0.5,), (0.25,))
_ACTIVE_STATISTICS: ContextVar[ImageStatistics | None] = ContextVar("image_statistics", default=None)


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA GPU; "
                           "use --device cpu or auto")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {requested!r}")
    return requested


@contextlib.contextmanager
def standardized_by(mean, std):
    """Inside the block, :func:`normalize` (and everything built on it) standardizes with
    ``mean`` and ``std``: per channel on the 0..1 scale, tuples of floats or a scalar each
    (:func:`harness.data.checked_image_statistics`, whose ValueError says what is wrong).
    Blocks nest; leaving one restores the statistics around it."""
    token = _ACTIVE_STATISTICS.set(checked_image_statistics(mean, std))
    try:
        yield
    finally:
        _ACTIVE_STATISTICS.reset(token)


def active_image_statistics() -> ImageStatistics:
    """The ``(mean, std)`` :func:`normalize` uses here: the innermost :func:`standardized_by`
    block's, else :data:`GENERIC_IMAGE_STATISTICS`."""
    return _ACTIVE_STATISTICS.get() or GENERIC_IMAGE_STATISTICS


def normalize(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NHWC, standardized per channel with the active statistics
    (:func:`standardized_by`): one fused multiply-add."""
    scale, shift = normalization_constants(batch_u8.device, batch_u8.shape[-1])
    return torch.addcmul(shift, batch_u8.float(), scale)


def normalization_constants(device: torch.device, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with (x / 255 - mean) / std == x * scale + shift, one value per
    channel (``channels`` of them: the networks take RGB), for the active statistics."""
    mean, std = active_image_statistics()
    return _constants(device, mean, std, channels)


@lru_cache(maxsize=8)  # per device, statistics and channel count
def _constants(device, mean: tuple, std: tuple, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    if len(mean) == 1:  # one value for every channel
        mean, std = mean * channels, std * channels
    elif len(mean) != channels:
        raise ValueError(f"the image statistics have {len(mean)} channels but the images have "
                         f"{channels}; register the dataset's statistics with one value per "
                         "channel (or one value for all channels)")
    mean = torch.tensor(mean, device=device)
    std = torch.tensor(std, device=device)
    return 1 / (255 * std), -mean / std


def crop_flip(batch: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop after zero padding, and horizontal flip with probability 1/2, per image.

    ``batch`` is NHWC (uint8 or float); each image gets its own offset and flip, applied by one
    gather. Returns a tensor of the same shape and dtype.
    """
    n, device = len(batch), batch.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return crop_flip_at(batch, padding, dy, dx, flip)


def crop_flip_at(batch: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor,
                 flip: torch.Tensor) -> torch.Tensor:
    """Crop image ``i`` of the zero-padded batch at row ``dy[i]``, column ``dx[i]``; mirror it
    when ``flip[i]``. One gather of whole pixels for the whole batch: ``index_select`` of the
    padded pixels by one linear index (2x faster on the CPU than indexing by three broadcast
    index tensors, and the same pixels; ``tests/test_engine.py``)."""
    n, h, w, c = batch.shape
    device = batch.device
    height, width = h + 2 * padding, w + 2 * padding
    pixels = F.pad(batch, (0, 0, padding, padding, padding, padding)).reshape(n * height * width, c)
    rows = dy[:, None] + torch.arange(h, device=device)
    cols = dx[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reverses the column order
    index = (torch.arange(n, device=device)[:, None, None] * (height * width)
             + rows[:, :, None] * width + cols[:, None, :])
    return pixels.index_select(0, index.reshape(-1)).view(n, h, w, c)


def to_model_layout(batch_nhwc: torch.Tensor) -> torch.Tensor:
    """NHWC -> an NCHW view with channels_last strides (no copy when already contiguous)."""
    return batch_nhwc.permute(0, 3, 1, 2)


def each_batch(fn, images_u8: torch.Tensor, batch_size: int = 1024):
    """``fn`` applied to network-ready batches (normalized, model layout) of uint8 NHWC
    images, one result per batch, lazily (a caller may stop early). Each call of ``fn`` runs in
    strict fp32 (module docstring); the settings are restored before each batch's result is
    handed out, so that they never leak into the caller between batches."""
    for start in range(0, len(images_u8), batch_size):
        batch = to_model_layout(normalize(images_u8[start:start + batch_size]))
        with strict_fp32():
            out = fn(batch)
        yield out


@torch.no_grad()
def map_batches(fn, images_u8: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """:func:`each_batch`'s results concatenated; bounds memory for any predictor (network,
    posterior, probe)."""
    outs = list(each_batch(fn, images_u8, batch_size))
    return torch.cat(outs) if outs else torch.empty(0)


def predict_logits(net, images_u8: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``net``'s fp32 logits (eval mode) for uint8 NHWC images."""
    net.eval()
    return map_batches(lambda x: net(x).float(), images_u8, batch_size)


@torch.no_grad()
def classifies_all(net, images_u8: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> bool:
    """Whether ``net`` predicts every label right: :func:`predict_logits`' batches and numerics,
    stopping at the first batch with an error (a network that is not yet fit is found there,
    at a fraction of a pass over the training set)."""
    net.eval()
    predictions = each_batch(lambda x: net(x).float().argmax(1), images_u8, batch_size)
    return all(bool((predicted == labels[i * batch_size:(i + 1) * batch_size]).all())
               for i, predicted in enumerate(predictions))


def network_inputs(images_u8: torch.Tensor) -> torch.Tensor:
    """Un-augmented uint8 NHWC images as the network takes them (normalized, model layout)."""
    return to_model_layout(normalize(images_u8))
