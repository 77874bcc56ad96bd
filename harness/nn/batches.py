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
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..data import CIFAR_MEAN, CIFAR_STD  # dataset facts live with the dataset
from .precision import strict_fp32


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


def normalize(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NHWC, standardized per channel: one fused multiply-add."""
    scale, shift = normalization_constants(batch_u8.device)
    return torch.addcmul(shift, batch_u8.float(), scale)


@lru_cache(maxsize=4)
def normalization_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / 255 - mean) / std == x * scale + shift, per channel."""
    mean = torch.tensor(CIFAR_MEAN, device=device)
    std = torch.tensor(CIFAR_STD, device=device)
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
