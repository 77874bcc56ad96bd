"""The neural-network training engine: one training loop, data on the device.

Batches are gathered and augmented on the device (:mod:`harness.batches`). On CUDA the
forward pass runs under bf16 autocast; on the CPU it runs in fp32 and, for a given seed and thread
count, gives identical results run after run.

:class:`TorchClassifier` wraps the engine in the harness's fit/predict model contract. The engine
knows no method by name: :func:`run_loop` calls the hooks of a :class:`~harness.methods.Method`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..caching import ObjectCache
from ..data.images import downsample
from ..nn.batches import (classifies_all, crop_flip, network_inputs, normalize, resolve_device,
                          to_model_layout)
from ..methods.base import Method, TrainingState
from ..methods.standard import ERM
from ..nn.networks import build_network, parameters_digest



def run_loop(state: TrainingState, method: Method, epoch_size: int | None = None) -> dict:
    """The one training loop: epochs of shuffled batches, augmented on the device, with every
    method-specific choice made by ``method``'s hooks (optimizer, schedule, per-epoch hooks,
    loss, step). Returns a small training log.

    ``state.weights`` (one per row, or None) scale each row's loss; ``epoch_size`` rows are
    drawn without replacement each epoch (default: all); ``state.stop_when_fit`` ends training
    after the first epoch whose un-augmented training error is zero.
    """
    net, images_u8, labels, hp = state.net, state.images, state.labels, state.hp
    device, generator = images_u8.device, state.generator
    n = min(epoch_size or len(labels), len(labels))
    batch_size = hp["batch_size"]
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = max(1, state.epochs * steps_per_epoch)
    state.params = params = [p for p in net.parameters() if p.requires_grad]
    optimizer = method.optimizer(state, params, state.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: method.lr_factor(step, total_steps))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    started, epochs_run = time.perf_counter(), 0
    for epoch in range(state.epochs):
        method.epoch_start(state, epoch)
        weights = state.weights
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
                loss = method.loss(logits.float(), labels[idx], state)
                return loss * weights[idx] if weights is not None else loss

            method.step(state, per_sample_loss, idx, optimizer)
            scheduler.step()
        method.epoch_end(state, epoch)
        epochs_run += 1
        if state.stop_when_fit and classifies_all(net, images_u8, labels):
            break
    seconds = time.perf_counter() - started
    return {"epochs_run": epochs_run, "images_seen": epochs_run * n, "train_seconds": seconds,
            "images_per_second": epochs_run * n / seconds if seconds > 0 else math.nan}


def train(net, images_u8: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
          hp: dict, epochs: int, lr: float, generator: torch.Generator,
          epoch_size: int | None = None, method: Method | None = None, seed: int = 0) -> dict:
    """:func:`run_loop` on a bare network (benchmarks, the GPU check): ERM unless ``method``."""
    num_classes = int(labels.max()) + 1
    state = TrainingState(net=net, labels=labels, num_classes=num_classes,
                          class_counts=torch.bincount(labels, minlength=num_classes), hp=hp,
                          seed=seed, generator=generator, images=images_u8, weights=weights,
                          epochs=epochs, lr=lr, device=images_u8.device)
    return run_loop(state, method or ERM(), epoch_size)


class TorchClassifier:
    """A CIFAR network trained by the engine, behind the harness's fit/predict model contract.

    Parameters
    ----------
    seed : int
        Seeds weight initialization, batch order and augmentation.
    n_jobs : int
        CPU threads for torch.
    **params
        The hyperparameters of :mod:`harness.learners.nn_hyperparameters` (``arch``, ``epochs``, ...).

    Its capabilities (the method hooks it honours) are declared on its factory in
    :mod:`harness.learners.models`, so that specs are checked without importing torch.
    """

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.seed, self.n_jobs, self.hp = seed, n_jobs, dict(params)
        self.log: dict = {}
        # x -> x as network-ready images, for the last few arrays (a run asks for its training
        # rows and its test rows): see images()
        self.images_seen = ObjectCache(maxsize=4)

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight=None, method: Method | None = None,
            epoch_size: int | None = None):
        """Train on uint8 NHWC images ``x`` with ``method``'s hooks (ERM when None)."""
        if x.ndim != 4 or x.dtype != np.uint8:
            raise ValueError(f"{self.hp['arch']} trains on uint8 NHWC images; got {x.dtype} {x.shape}")
        self.method = self.trained_with = method = method or ERM()
        device = torch.device(resolve_device(self.hp.get("device", "cpu")))
        if device.type == "cpu":
            torch.set_num_threads(self.n_jobs)
        torch.manual_seed(self.seed)
        self.device = device
        num_classes = int(max(self.hp.get("num_classes", 0), y.max() + 1))
        net = build_network(self.hp["arch"], num_classes, self.hp.get("width"))
        net = net.to(device, memory_format=torch.channels_last)
        self.init_digest = parameters_digest(net)  # the run record's fingerprint of the seed
        images = torch.from_numpy(downsample(x, self.hp["image_size"])).to(device)
        labels = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        weights = (torch.as_tensor(sample_weight, dtype=torch.float32, device=device)
                   if sample_weight is not None else None)
        self.state = state = TrainingState(
            net=net, labels=labels, num_classes=num_classes,
            class_counts=torch.bincount(labels, minlength=num_classes), hp=self.hp, seed=self.seed,
            generator=torch.Generator(device=device).manual_seed(self.seed), images=images,
            weights=weights, epochs=self.hp["epochs"], lr=self.hp["lr"], device=device)
        self.log = dict(method.prepare(state))
        self.log.update(run_loop(state, method, epoch_size))
        self.log.update(method.finish(state))
        return self

    @property
    def net(self):
        return self.state.net

    @property
    def num_classes(self) -> int:
        return self.state.num_classes

    @property
    def train_images(self) -> torch.Tensor:
        return self.state.images

    @property
    def train_labels(self) -> torch.Tensor:
        return self.state.labels

    def extra_metrics(self, **measurements) -> dict:
        """Flatness of the minimum on the model's own training data (Figure 7), when asked for
        by ``hessian_top_k`` > 0: the top Hessian eigenvalues of the mean cross-entropy, and the
        loss along ``loss_directions`` filter-normalized random directions (alpha in [-1, 1];
        ``loss`` is their mean curve, ``losses`` one curve per direction).

        ``measurements`` (the ``MEASUREMENT_SETTINGS`` of :mod:`~harness.learners.nn_hyperparameters`)
        override the model's own, so that runs sharing this trained network measure it each with
        their own settings. The network is left as it was (weights restored, eval mode)."""
        hp = {**self.hp, **measurements}
        k = hp.get("hessian_top_k", 0)
        if not k:
            return {}
        from ..nn import flatness

        n = min(hp["hessian_samples"], len(self.train_labels))
        pick = torch.randperm(len(self.train_labels), generator=torch.Generator().manual_seed(self.seed))[:n]
        images = self.train_images[pick.to(self.train_images.device)]
        labels = self.train_labels[pick.to(self.train_labels.device)]
        inputs = network_inputs(images)
        self.net.eval()
        eigenvalues = flatness.hessian_top_eigenvalues(
            self.net, lambda out: F.cross_entropy(out.float(), labels), inputs, k=k, seed=self.seed,
            tol=hp.get("hessian_tol", 1e-3))
        alphas = [round(a, 2) for a in np.linspace(-1, 1, 11)]
        curves = []
        for d in range(hp["loss_directions"]):  # direction d: its own seeded draw
            generator = torch.Generator().manual_seed(self.seed + 1_000_003 * d)
            direction = flatness.filter_normalized_direction(self.net, generator)
            curves.append(flatness.loss_along(self.net, direction, alphas,
                                              lambda m: F.cross_entropy(m(inputs).float(), labels)))
        return {"hessian_top_eigenvalues": [float(v) for v in eigenvalues],
                "loss_along_direction": {"alpha": alphas, "loss": np.mean(curves, 0).tolist(),
                                         "losses": curves}}

    def use_method(self, method: Method) -> dict:
        """Predict with ``method`` from now on: the method it trained with, or a post-hoc method
        sharing this trained network (one that ``trains_like`` it). Its post-training stage
        (``finish``, e.g. Laplace's posterior) runs here unless it is the trained method's own,
        which already ran; returns the stage's training-log entries."""
        trained_with, self.method = self.trained_with, method
        if type(method).finish is type(trained_with).finish:
            return {}
        self.state.forget_logits()  # the stage may change the network (Laplace: its memory layout)
        return dict(method.finish(self.state))

    def probabilities(self, images_u8: torch.Tensor) -> torch.Tensor:
        """Class probabilities of the trained model: the method's predictive (the posterior
        predictive for Laplace and SGHMC, adjusted logits for post-hoc corrections, the
        network's softmax otherwise)."""
        return self.method.probabilities(self.state, images_u8)

    def images(self, x: np.ndarray) -> torch.Tensor:
        """``x`` at the network's input size, on its device. The arrays asked for are kept (the
        last few), so that the runs sharing this network, which predict the same training and
        test rows, get the same tensors: converted once, and their logits computed once
        (:meth:`~harness.methods.TrainingState.network_logits`). (The runner hands networks their
        dataset already at ``image_size``, downsampled once per process; arrays at another size
        are downsampled here.)"""
        return self.images_seen.get(
            x, lambda x: torch.from_numpy(downsample(x, self.hp["image_size"])).to(self.device))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.probabilities(self.images(x)).argmax(1).cpu().numpy().astype(np.int64)

    def predict_variants(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Predictions of the other models a run produces, recorded beside the main one (the
        method's ``variants``: a Laplace run's MAP network, a SimCLR run's linear probe)."""
        if type(self.method).variants is Method.variants:  # none: no test images to convert
            return {}
        return self.method.variants(self.state, self.images(x))
