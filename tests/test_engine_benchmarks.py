"""Training throughput (images/s): the engine against a plain DataLoader + torchvision pipeline.

Both pipelines train the same network with the same optimizer on the same images, on the
current device (CUDA when visible, else CPU); only the data path differs. The plain pipeline is
what most CIFAR code does: a Dataset of PIL images, ``RandomCrop(padding) + RandomHorizontalFlip
+ ToTensor + Normalize`` per image, and a DataLoader that collates batches. Each benchmark stores
its images/s in ``extra_info``; ``test_engine_is_faster_than_plain_pipeline`` measures both in
one process and asserts the engine wins.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from harness.nn import batches, networks
from harness import data
from harness.experiments import cpucheck
from harness.learners import engine, models

STEPS = 12  # SGD steps per measurement
ROUNDS = 10  # measurements per pipeline; medians and spread are what the notes quote


def setup(arch: str, batch_size: int, steps: int = STEPS):
    hp = dict(models.DEFAULTS[arch], batch_size=batch_size)
    device = torch.device(batches.resolve_device("auto"))
    rng = np.random.default_rng(0)
    n = batch_size * steps
    side = hp["image_size"]
    images = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    net = networks.build_network(arch, 10, hp.get("width")).to(device, memory_format=torch.channels_last)
    return hp, device, images, labels, net


def engine_images_per_second(arch: str, batch_size: int) -> float:
    hp, device, images, labels, net = setup(arch, batch_size)
    x = torch.from_numpy(images).to(device)
    y = torch.from_numpy(labels).to(device)
    log = engine.train(net, x, y, None, hp, epochs=1, lr=hp["lr"],
                       generator=torch.Generator(device=device).manual_seed(0))
    return log["images_per_second"]


def plain_images_per_second(arch: str, batch_size: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    hp, device, images, labels, net = setup(arch, batch_size)
    transform = T.Compose([T.RandomCrop(hp["image_size"], padding=hp["crop_padding"]),
                           T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.CIFAR_MEAN, data.CIFAR_STD)])

    class PilImages(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(Image.fromarray(images[i])), int(labels[i])

    loader = DataLoader(PilImages(), batch_size=batch_size, shuffle=True, num_workers=0)
    optimizer = torch.optim.SGD(net.parameters(), lr=hp["lr"], momentum=hp["momentum"],
                                weight_decay=hp["weight_decay"])
    net.train()
    started = time.perf_counter()
    for x, y in loader:
        x = x.to(device, memory_format=torch.channels_last)
        y = y.to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - started)


# (arch, batch size): the quick network at its training batch; ResNet-34 at a small batch so that
# the CPU measurement stays a few seconds (on a GPU use the real batch of 128).
CASES = [("small_cnn", 128), ("resnet34", 128 if torch.cuda.is_available() else 16)]


@pytest.mark.parametrize("arch, batch_size", CASES)
@pytest.mark.parametrize("pipeline", ["engine", "plain"])
def test_benchmark_training_throughput(benchmark, arch, batch_size, pipeline):
    measure = engine_images_per_second if pipeline == "engine" else plain_images_per_second
    benchmark.group = f"throughput-{arch}"
    rounds = ROUNDS if arch == "small_cnn" else 1
    ips = benchmark.pedantic(measure, args=(arch, batch_size), rounds=rounds, iterations=1)
    benchmark.extra_info["images_per_second"] = round(ips)
    benchmark.extra_info["device"] = batches.resolve_device("auto")
    assert ips > 0


def test_engine_is_faster_than_plain_pipeline():
    """Interleaved rounds (engine, plain, engine, ...) so that a slow spell of the machine hits
    both; the ratio of medians is the figure, with the range of per-round ratios as spread."""
    engine_ips, plain_ips = [], []
    for _ in range(ROUNDS):
        engine_ips.append(engine_images_per_second("small_cnn", 128))
        plain_ips.append(plain_images_per_second("small_cnn", 128))
    ratios = np.array(engine_ips) / np.array(plain_ips)
    print(f"small_cnn over {ROUNDS} rounds: engine median {np.median(engine_ips):.0f} img/s "
          f"(range {min(engine_ips):.0f}-{max(engine_ips):.0f}), plain median "
          f"{np.median(plain_ips):.0f} img/s (range {min(plain_ips):.0f}-{max(plain_ips):.0f}); "
          f"ratio of medians {np.median(engine_ips) / np.median(plain_ips):.2f}x, per-round "
          f"ratios {ratios.min():.2f}-{ratios.max():.2f}x")
    assert np.median(engine_ips) > np.median(plain_ips)


@pytest.mark.parametrize("arch, width, image_size", cpucheck.TRAINING_CASES)
def test_benchmark_cpu_mfu(benchmark, arch, width, image_size):
    """CPU MFU (docs/timings.md, "The CPU engine against the chip"): the engine's training GFLOP/s (FLOPs per training
    image, counted by torch, times images/s) over the measured fp32 matmul ceiling of this
    machine, both on every core the process may use. The median of the rounds is the figure."""
    if torch.cuda.is_available():
        pytest.skip("CPU MFU: this machine trains the networks on its GPU (gpucheck measures that)")
    ceiling = cpucheck.matmul_gflops("float32")
    benchmark.group = "cpu-mfu"
    row = benchmark.pedantic(cpucheck.training_gflops, args=(arch, width, image_size), rounds=3,
                             iterations=1)
    benchmark.extra_info.update(row, matmul_gflops_fp32=round(ceiling, 1),
                                mfu=round(row["gflops"] / ceiling, 3))
    assert 0 < row["gflops"] < 1.5 * ceiling  # a FLOP count or a clock far off says so here
