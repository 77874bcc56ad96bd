"""The neural-network training engine: data on the device, augmentation applied in batch.

The training set is one uint8 NHWC tensor on the device. Each step gathers a batch, then draws a
random crop offset and a horizontal flip *per image* and applies them to the whole batch with one
gather (no DataLoader, no per-image PIL transforms). NHWC memory is what PyTorch calls
channels_last, so the gathered batch feeds channels_last convolutions without a copy. On CUDA the
forward pass runs under bf16 autocast; on the CPU it runs in fp32 and, for a given seed and thread
count, gives identical results run after run.

:class:`TorchClassifier` wraps the engine in the harness's fit/predict model contract.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from . import sam
from .networks import build_network, replace_classifier, split_classifier

# Per-channel statistics of the CIFAR-10 training images (0..1 scale).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


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


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Area-downsample NHWC uint8 images to ``size`` x ``size`` (integer factors only)."""
    side = images.shape[1]
    if side == size:
        return images
    if side % size:
        raise ValueError(f"image size {size} must divide the native size {side}")
    factor = side // size
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, factor)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


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
    when ``flip[i]``. One gather for the whole batch."""
    n, h, w, _ = batch.shape
    device = batch.device
    padded = F.pad(batch, (0, 0, padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(h, device=device)
    cols = dx[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reverses the column order
    return padded[torch.arange(n, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def to_model_layout(batch_nhwc: torch.Tensor) -> torch.Tensor:
    """NHWC -> an NCHW view with channels_last strides (no copy when already contiguous)."""
    return batch_nhwc.permute(0, 3, 1, 2)


@torch.no_grad()
def map_batches(fn, images_u8: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """``fn`` applied to network-ready batches (normalized, model layout) of uint8 NHWC
    images, results concatenated; bounds memory for any predictor (network, posterior, probe)."""
    outs = [fn(to_model_layout(normalize(images_u8[start:start + batch_size])))
            for start in range(0, len(images_u8), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def predict_logits(net, images_u8: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    net.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=images_u8.is_cuda):
        return map_batches(lambda x: net(x).float(), images_u8, batch_size)


def cosine(step: int, total_steps: int) -> float:
    """Learning-rate factor of a cosine decay from 1 to 0 over ``total_steps``."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def sgd(params, lr: float, hp: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=hp["momentum"], weight_decay=hp["weight_decay"])


def train(net, images_u8: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
          hp: dict, epochs: int, lr: float, generator: torch.Generator,
          stop_when_fit: bool = False, epoch_size: int | None = None,
          radii: torch.Tensor | None = None, make_optimizer=sgd, schedule=cosine,
          after_epoch=None) -> dict:
    """SGD with momentum and a per-step cosine schedule; returns a small training log.

    ``weights`` (one per sample, mean 1) scale each sample's loss. ``epoch_size`` rows are drawn
    without replacement from the training rows each epoch (default: all). ``stop_when_fit``
    ends training after the first epoch whose un-augmented training error is zero. ``radii``
    (one per sample) turns each step into a SAM / asymmetric-SAM step (:mod:`harness.sam`).
    ``make_optimizer(params, lr, hp)`` and ``schedule(step, total_steps) -> lr factor`` replace
    SGD and the cosine (SGHMC uses both); ``after_epoch(epoch_index)`` runs after each epoch.
    """
    device = images_u8.device
    n = min(epoch_size or len(labels), len(labels))
    batch_size = hp["batch_size"]
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, lr, hp)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step, total_steps))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    started, epochs_run = time.perf_counter(), 0
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(labels), generator=generator, device=device)[:n]
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            # Augment in uint8 (a quarter of the bytes to gather), then normalize; zero padding
            # is black, as torchvision's RandomCrop(padding=...) on PIL images pads.
            batch = normalize(crop_flip(images_u8[idx], hp["crop_padding"], generator))

            def per_sample_loss(batch=batch, idx=idx):
                with autocast:
                    logits = net(to_model_layout(batch))
                loss = F.cross_entropy(logits.float(), labels[idx], reduction="none")
                return loss * weights[idx] if weights is not None else loss

            if radii is None:
                optimizer.zero_grad(set_to_none=True)
                per_sample_loss().mean().backward()
                optimizer.step()
            else:
                sam.sam_step(params, per_sample_loss, radii[idx], optimizer)
            scheduler.step()
        if after_epoch is not None:
            after_epoch(epochs_run)
        epochs_run += 1
        if stop_when_fit and (predict_logits(net, images_u8).argmax(1) == labels).all():
            break
    seconds = time.perf_counter() - started
    return {"epochs_run": epochs_run, "images_seen": epochs_run * n, "train_seconds": seconds,
            "images_per_second": epochs_run * n / seconds if seconds > 0 else math.nan}


def minority_half_radii(labels: torch.Tensor, num_classes: int, rho: float,
                        scale: float) -> torch.Tensor:
    """Per-sample SAM radii: ``rho`` for the more frequent half of the classes in ``labels``,
    ``rho * scale`` for the rarer half (binary: the minority class; CIFAR-10: the 5 rarest)."""
    counts = torch.bincount(labels, minlength=num_classes)
    rarest = torch.argsort(counts, stable=True)[: num_classes // 2]
    per_class = torch.full((num_classes,), float(rho), device=labels.device)
    per_class[rarest] = rho * scale
    return per_class[labels]


class TorchClassifier:
    """A CIFAR network trained by the engine, behind the harness's fit/predict contract.

    Parameters
    ----------
    seed : int
        Seeds weight initialization, batch order and augmentation.
    n_jobs : int
        CPU threads for torch.
    **params
        The hyperparameters of :mod:`harness.nn_hyperparameters` (``arch``, ``epochs``, ...).
    """

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.seed, self.n_jobs, self.hp = seed, n_jobs, dict(params)
        self.log: dict = {}

    REGIMES = ("standard", "overfit", "sam", "asymmetric_sam", "laplace", "sghmc", "simclr",
               "pretrained")

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight=None, regime: str = "standard",
            epoch_size: int | None = None):
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ValueError(f"{self.hp['arch']} trains on uint8 NHWC images; got {x.dtype} {x.shape}")
        if regime not in self.REGIMES:
            raise ValueError(f"unknown training regime {regime!r}; choose one of {self.REGIMES}")
        device = torch.device(resolve_device(self.hp.get("device", "cpu")))
        if device.type == "cpu":
            torch.set_num_threads(self.n_jobs)
        torch.manual_seed(self.seed)
        self.regime, self.device = regime, device
        self.num_classes = int(max(self.hp.get("num_classes", 0), y.max() + 1))
        self.net = build_network(self.hp["arch"], self.num_classes, self.hp.get("width"))
        self.net = self.net.to(device, memory_format=torch.channels_last)
        images = torch.from_numpy(resize_uint8(x, self.hp["image_size"])).to(device)
        labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        self.train_images, self.train_labels = images, labels
        weights = (torch.as_tensor(sample_weight, dtype=torch.float32, device=device)
                   if sample_weight is not None else None)
        generator = torch.Generator(device=device).manual_seed(self.seed)
        epochs, lr = self.hp["epochs"], self.hp["lr"]
        if regime == "overfit":  # small learning rate, many epochs, until the training set is fit
            epochs = int(epochs * self.hp["overfit_epoch_scale"])
            lr = lr * self.hp["overfit_lr_scale"]
        radii = None
        if regime in ("sam", "asymmetric_sam"):
            scale = self.hp["minority_radius_scale"] if regime == "asymmetric_sam" else 1.0
            radii = minority_half_radii(labels, self.num_classes, self.hp["sam_rho"], scale)
        pre_log, extra = {}, {}
        if regime in ("simclr", "pretrained"):  # pre-trained encoder, then end-to-end fine-tuning
            pre_log = self.pretrain_encoder(images, generator)
            lr = lr * self.hp["finetune_lr_scale"]
            self.fit_linear_probe(images, labels)
            replace_classifier(self.net, self.num_classes)
            self.net = self.net.to(memory_format=torch.channels_last)
        if regime == "sghmc":
            from . import bayesian
            from .sghmc import SampleAverager

            cycles, per_cycle = self.hp["sghmc_cycles"], self.hp["sghmc_samples_per_cycle"]
            collect_at = bayesian.sample_epochs(epochs, cycles, per_cycle)
            self.samples = SampleAverager()
            extra = dict(
                make_optimizer=bayesian.sghmc_optimizer(len(labels), self.hp["sghmc_temperature"],
                                                        torch.Generator().manual_seed(self.seed)),
                schedule=bayesian.cyclical_cosine(cycles),
                after_epoch=lambda e: self.samples.collect(self.net) if e in collect_at else None)
        self.log = {**pre_log, **train(self.net, images, labels, weights, self.hp, epochs, lr,
                                       generator, stop_when_fit=regime == "overfit",
                                       epoch_size=epoch_size, radii=radii, **extra)}
        if regime == "laplace":
            from . import bayesian

            self.laplace = bayesian.fit_diagonal_laplace(
                self.net, to_model_layout(normalize(images)), labels, self.hp["laplace_subset"])
            self.log["laplace_prior_precision"] = float(self.laplace.prior_precision.mean())
        return self

    def pretrain_encoder(self, images: torch.Tensor, generator: torch.Generator) -> dict:
        """SimCLR on the training images themselves, or user-supplied weights ("pretrained")."""
        from . import simclr

        encoder, head_name = split_classifier(self.net)
        if self.regime == "pretrained":
            if not self.hp.get("pretrained_weights"):
                raise ValueError("the 'pretrained' regime needs the hyperparameter "
                                 "pretrained_weights (a state-dict file for this network)")
            return simclr.load_pretrained(self.net, self.hp["pretrained_weights"], head_name)
        scale, shift = normalization_constants(images.device)
        scale, shift = scale.view(1, 3, 1, 1) * 255, shift.view(1, 3, 1, 1)
        feature_dim = self.net.get_submodule(head_name).in_features
        return simclr.pretrain(encoder, feature_dim, images, self.hp, generator,
                               standardize=lambda x: x * scale + shift)

    @torch.no_grad()
    def fit_linear_probe(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """A linear probe on a frozen copy of the pre-trained encoder (taken before fine-tuning
        moves the weights, so that one pre-training serves both routines of Figure 6)."""
        import copy

        from . import simclr

        encoder, _ = split_classifier(self.net)
        self.frozen_encoder = copy.deepcopy(encoder).eval()
        self.probe = simclr.LinearProbe(self.seed).fit(self.frozen_features(images),
                                                       labels.cpu().numpy())

    def frozen_features(self, images_u8: torch.Tensor) -> np.ndarray:
        return map_batches(lambda x: self.frozen_encoder(x).float(), images_u8).cpu().numpy()

    def extra_metrics(self) -> dict:
        """Flatness of the minimum on the model's own training data (Figure 7), when asked for
        by ``hessian_top_k`` > 0: the top Hessian eigenvalues of the mean cross-entropy, and the
        loss along ``loss_directions`` filter-normalized random directions (alpha in [-1, 1];
        ``loss`` is their mean curve, ``losses`` one curve per direction)."""
        k = self.hp.get("hessian_top_k", 0)
        if not k:
            return {}
        from . import flatness

        n = min(self.hp["hessian_samples"], len(self.train_labels))
        pick = torch.randperm(len(self.train_labels), generator=torch.Generator().manual_seed(self.seed))[:n]
        images = self.train_images[pick.to(self.train_images.device)]
        labels = self.train_labels[pick.to(self.train_labels.device)]
        inputs = to_model_layout(normalize(images))
        self.net.eval()
        eigenvalues = flatness.hessian_top_eigenvalues(
            self.net, lambda out: F.cross_entropy(out.float(), labels), inputs, k=k, seed=self.seed,
            tol=self.hp.get("hessian_tol", 1e-3))
        alphas = [round(a, 2) for a in np.linspace(-1, 1, 11)]
        curves = []
        for d in range(self.hp["loss_directions"]):  # direction d: its own seeded draw
            generator = torch.Generator().manual_seed(self.seed + 1_000_003 * d)
            direction = flatness.filter_normalized_direction(self.net, generator)
            curves.append(flatness.loss_along(self.net, direction, alphas,
                                              lambda m: F.cross_entropy(m(inputs).float(), labels)))
        return {"hessian_top_eigenvalues": [float(v) for v in eigenvalues],
                "loss_along_direction": {"alpha": alphas, "loss": np.mean(curves, 0).tolist(),
                                         "losses": curves}}

    def probabilities(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Class probabilities of the trained model: the posterior predictive for Laplace and
        SGHMC, the network's softmax otherwise."""
        if self.regime == "laplace":  # GLM predictive with the probit approximation
            return map_batches(lambda x: self.laplace(x, pred_type="glm", link_approx="probit"),
                               images_u8)
        if self.regime == "sghmc":
            return map_batches(self.samples.predict_proba, images_u8)
        return predict_logits(self.net, images_u8).softmax(1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(resize_uint8(x, self.hp["image_size"])).to(self.device)
        return self.probabilities(images).argmax(1).cpu().numpy().astype(np.int64)

    def predict_variants(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Predictions of the other models a run produces, recorded beside the main one: the
        MAP network a Laplace posterior is fitted around, and the linear probe on the
        pre-trained encoder of a SimCLR / pre-trained run."""
        images = torch.from_numpy(resize_uint8(x, self.hp["image_size"])).to(self.device)
        if self.regime == "laplace":
            return {"map": predict_logits(self.net, images).argmax(1).cpu().numpy().astype(np.int64)}
        if self.regime in ("simclr", "pretrained"):
            return {"linear_probe": self.probe.predict(self.frozen_features(images))}
        return {}
