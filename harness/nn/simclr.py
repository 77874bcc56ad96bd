"""SimCLR (Chen et al. 2020): contrastive pre-training on the training set itself (Section 5).

Two augmented views of every image in a batch go through the encoder and a projection head; the
NT-Xent loss pulls each view towards its partner and away from the other ``2B - 2`` views. The
views are drawn *per image* and applied to the whole batch at once on the device:
``torchvision.transforms.v2`` applied to a batch tensor draws one crop and one jitter for the
whole batch, which would make every image in a batch share its augmentation.

Per image, in this order (the SimCLR CIFAR recipe; torchvision shuffles the jitter order, we keep
it fixed):

* random resized crop (area fraction in [``crop_scale_min``, 1], aspect ratio in [3/4, 4/3]) and
  a horizontal flip with probability 1/2, both in one ``affine_grid`` / ``grid_sample``;
* with probability 0.8, colour jitter: brightness, contrast and saturation factors in
  [0.6, 1.4], hue shifted by up to 0.1 of a turn (a rotation of the chroma plane in YIQ space);
* with probability 0.2, grayscale.

After pre-training the projection head is dropped; the encoder is then either fine-tuned end to
end with a new linear head (the standard supervised recipe, only the initialization differs) or
frozen under a linear probe (multinomial logistic regression on its features).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn.optim import cosine, sgd

GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights, as torchvision's rgb_to_grayscale
# RGB -> YIQ; hue rotation turns the (I, Q) chroma plane and maps back.
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
# Its inverse, once, on the CPU (the numbers the CPU always used): inverting it per view, on the
# views' device, cost a small linear solve and its synchronization for every view.
YIQ_TO_RGB = torch.linalg.inv(torch.tensor(RGB_TO_YIQ))


@lru_cache(maxsize=4)
def color_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Luma weights (1, 3, 1, 1), RGB -> YIQ and YIQ -> RGB (3 x 3) on ``device``, copied there
    once per device rather than from Python lists at every view."""
    return (torch.tensor(GRAY, device=device).view(1, 3, 1, 1),
            torch.tensor(RGB_TO_YIQ, device=device), YIQ_TO_RGB.to(device))


def random_resized_crop_flip(images: torch.Tensor, generator: torch.Generator,
                             scale_min: float = 0.2) -> torch.Tensor:
    """Per-image random resized crop and horizontal flip of NCHW float images (same size out).

    Image ``i`` gets area fraction ``s_i ~ U(scale_min, 1)``, log-uniform aspect ratio ``a_i`` in
    [3/4, 4/3], crop width ``sqrt(s a)`` and height ``sqrt(s / a)`` (fractions of the side,
    at most 1) at a uniform position inside the image, mirrored with probability 1/2.
    """
    n, device = len(images), images.device

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    area = uniform(scale_min, 1.0)
    aspect = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = uniform(-1.0, 1.0) * (1 - width)  # crop centre in [-1, 1] coordinates, crop inside
    cy = uniform(-1.0, 1.0) * (1 - height)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return resized_crop_at(images, width, height, cx, cy, flip)


def resized_crop_at(images: torch.Tensor, width: torch.Tensor, height: torch.Tensor,
                    cx: torch.Tensor, cy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Crop image ``i`` to the box of ``width[i]`` x ``height[i]`` (fractions of the side)
    centred at ``(cx[i], cy[i])`` (in [-1, 1]), mirror it when ``flip[i]``, and resize the crop
    back to the input size (bilinear): one ``affine_grid`` + ``grid_sample`` for the batch."""
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = torch.where(flip, -width, width)
    theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = cx, height, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of NCHW RGB images, shape (N, 1, H, W)."""
    weights = color_constants(images.device)[0]
    return (images * weights).sum(1, keepdim=True)


def color_jitter(images: torch.Tensor, generator: torch.Generator, strength: float = 0.4,
                 hue: float = 0.1, p: float = 0.8) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and hue jitter of NCHW images in [0, 1],
    applied to each image with probability ``p``."""
    n, device = len(images), images.device

    def factor(low, high):
        return (low + (high - low) * torch.rand(n, generator=generator, device=device)).view(n, 1, 1, 1)

    apply = (torch.rand(n, generator=generator, device=device) < p).view(n, 1, 1, 1)
    out = images * factor(1 - strength, 1 + strength)                      # brightness
    mean = grayscale(out).mean((2, 3), keepdim=True)
    out = ((out - mean) * factor(1 - strength, 1 + strength) + mean).clamp(0, 1)  # contrast
    gray = grayscale(out)
    out = ((out - gray) * factor(1 - strength, 1 + strength) + gray).clamp(0, 1)  # saturation
    angle = 2 * math.pi * factor(-hue, hue).view(n)
    out = rotate_hue(out, angle).clamp(0, 1)
    return torch.where(apply, out, images)


def rotate_hue(images: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma by ``angle[i]`` radians in YIQ space (luma unchanged)."""
    _, to_yiq, from_yiq = color_constants(images.device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(images), 3, 3, device=images.device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    transform = from_yiq @ rotation @ to_yiq  # (N, 3, 3), one per image
    return torch.einsum("nij,njhw->nihw", transform, images)


def random_grayscale(images: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    pick = (torch.rand(len(images), generator=generator, device=images.device) < p).view(-1, 1, 1, 1)
    return torch.where(pick, grayscale(images).expand_as(images), images)


def simclr_view(batch_u8: torch.Tensor, generator: torch.Generator, scale_min: float) -> torch.Tensor:
    """One augmented view of a uint8 NHWC batch: float NCHW in [0, 1], channels_last."""
    x = batch_u8.permute(0, 3, 1, 2).float() / 255
    x = random_resized_crop_flip(x, generator, scale_min)
    x = random_grayscale(color_jitter(x, generator), generator)
    return x.contiguous(memory_format=torch.channels_last)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss: mean over the ``2B`` views of the cross-entropy of picking the partner view
    among the other ``2B - 1``, with cosine similarity divided by ``temperature``."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    b = len(z1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own candidate
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(similarity, partner)


def projection_head(feature_dim: int, out_dim: int) -> nn.Module:
    """SimCLR's projection head: Linear-ReLU-Linear (hidden width = feature width)."""
    return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True),
                         nn.Linear(feature_dim, out_dim))


def pretrain(encoder: nn.Module, feature_dim: int, images_u8: torch.Tensor, settings: dict,
             hp: dict, generator: torch.Generator, standardize) -> dict:
    """SimCLR pre-training of ``encoder`` on ``images_u8`` (uint8 NHWC, on the device).

    ``settings`` are the method's (:class:`harness.methods.pretraining.SimCLR`): SGD at ``lr``
    with the network's momentum and weight decay (``hp``), cosine-annealed per step, for
    ``epochs`` passes; batches of ``batch_size`` images (two views each, crops keeping at least
    ``crop_scale_min`` of the area), NT-Xent at ``temperature``, a projection head of
    ``projection_dim``. ``standardize`` maps NCHW floats in [0, 1] to the network's input
    scale. Returns a log with the loss of the first and last epoch.
    """
    import time

    device = images_u8.device
    head = projection_head(feature_dim, settings["projection_dim"]).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = sgd(params, settings["lr"], hp)
    n, batch_size = len(images_u8), min(settings["batch_size"], len(images_u8))
    steps_per_epoch = n // batch_size  # drop the ragged last batch: NT-Xent wants many negatives
    total = max(1, settings["epochs"] * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine(step, total))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    started, epoch_losses = time.perf_counter(), []
    encoder.train()
    for _ in range(settings["epochs"]):
        order = torch.randperm(n, generator=generator, device=device)
        losses = []
        for step in range(steps_per_epoch):
            batch = images_u8[order[step * batch_size:(step + 1) * batch_size]]
            views = torch.cat([simclr_view(batch, generator, settings["crop_scale_min"]) for _ in range(2)])
            with autocast:
                z = head(encoder(standardize(views)))
            loss = nt_xent(z[:len(batch)], z[len(batch):], settings["temperature"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
        epoch_losses.append(float(torch.stack(losses).mean()) if losses else math.nan)
    return {"simclr_epochs": settings["epochs"], "simclr_seconds": time.perf_counter() - started,
            "simclr_loss_first_epoch": epoch_losses[0] if epoch_losses else math.nan,
            "simclr_loss_last_epoch": epoch_losses[-1] if epoch_losses else math.nan}


class LinearProbe:
    """Multinomial logistic regression on frozen, standardized encoder features."""

    def __init__(self, seed: int = 0, C: float = 1.0):
        self.seed, self.C = seed, C

    def fit(self, features: np.ndarray, labels: np.ndarray) -> LinearProbe:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000,
                                                                        random_state=self.seed))
        self.model.fit(features, labels)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(features), dtype=np.int64)


def load_pretrained(net: nn.Module, path: str, head_prefix: str) -> dict:
    """Load a state dict (e.g. ImageNet SimCLR weights) into ``net``'s encoder.

    Tensors are matched by name and shape; the classifier head (names starting with
    ``head_prefix``) is never loaded, and tensors whose shape differs (ResNet's ImageNet stem is
    7x7, the CIFAR stem 3x3) are left at their initialization. Raises ValueError when less than
    90% of the encoder's parameters would load: the file is for another architecture.
    """
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict; save one with torch.save(model.state_dict(), path)")
    state = {k.removeprefix("module.").removeprefix("encoder.").removeprefix("backbone."): v
             for k, v in state.items()}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(head_prefix)}
    loaded = {k: state[k] for k, v in own.items() if k in state and state[k].shape == v.shape}
    own_params = sum(v.numel() for k, v in own.items() if v.is_floating_point())
    loaded_params = sum(v.numel() for v in loaded.values() if v.is_floating_point())
    if loaded_params < 0.9 * own_params:
        missing = sorted(set(own) - set(loaded))[:8]
        raise ValueError(f"{path}: only {loaded_params:,} of {own_params:,} encoder parameters match "
                         f"this network by name and shape (missing e.g. {missing}); the weights "
                         "must come from the same architecture (torchvision ResNet names)")
    net.load_state_dict(loaded, strict=False)
    return {"pretrained_tensors_loaded": len(loaded), "pretrained_tensors_total": len(own)}
