"""SimCLR view throughput (images/s): batched per-image augmentation against a per-image loop.

The batched path (:func:`harness.nn.simclr.simclr_view`) draws every image's crop, flip, jitter and
grayscale at once and applies them in a few tensor ops. The alternative that keeps augmentation
per image with torchvision is a Python loop of ``transforms.v2`` calls, one image at a time (v2
on a batch tensor would give the whole batch one draw). Both produce 256 views of 16-px images.
"""

from __future__ import annotations

import pytest
import torch

from harness.nn import simclr

BATCH, SIDE = 256, 16


def batch_u8():
    return torch.randint(0, 256, (BATCH, SIDE, SIDE, 3), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def per_image_v2():
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(SIDE, scale=(0.2, 1.0), antialias=True),
                       v2.RandomHorizontalFlip(),
                       v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                       v2.RandomGrayscale(p=0.2)])


@pytest.mark.parametrize("path", ["batched", "per_image_v2"])
def test_benchmark_simclr_views(benchmark, path):
    images = batch_u8()
    if path == "batched":
        generator = torch.Generator().manual_seed(0)
        run = lambda: simclr.simclr_view(images, generator, 0.2)  # noqa: E731
    else:
        transform, chw = per_image_v2(), images.permute(0, 3, 1, 2).float() / 255
        run = lambda: torch.stack([transform(img) for img in chw])  # noqa: E731
    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (BATCH, 3, SIDE, SIDE)
    benchmark.extra_info["images_per_second"] = BATCH / benchmark.stats.stats.median
