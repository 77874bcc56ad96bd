"""Pre-trained encoders, then end-to-end fine-tuning (Figure 6): SimCLR on the training images
themselves, or user-supplied ImageNet SimCLR weights. Both record a linear probe on the
pre-trained encoder (frozen) as the variant ``linear_probe``."""

from __future__ import annotations

import copy

from .base import Method, TrainingState, register


class FineTuned(Method):
    """Shared stages: pre-train (subclass), probe the frozen encoder, new head, fine-tune."""

    requires = frozenset({"rows", "loop", "encoder", "logits"})
    libraries = ("sklearn.linear_model",)  # the linear probe (harness.nn.simclr.LinearProbe)
    variant_names = ("linear_probe",)

    def pretrain(self, state: TrainingState, encoder, head_name: str) -> dict:
        raise NotImplementedError

    def prepare(self, state: TrainingState) -> dict:
        import torch

        from ..nn import simclr
        from ..nn.batches import map_batches
        from ..nn.networks import replace_classifier, split_classifier

        encoder, head_name = split_classifier(state.net)
        log = self.pretrain(state, encoder, head_name)
        state.lr = state.lr * self.settings["finetune_lr_scale"]
        # The probe sees a frozen copy taken before fine-tuning moves the weights, so that one
        # pre-training serves both routines of Figure 6.
        frozen = copy.deepcopy(split_classifier(state.net)[0]).eval()
        state.extra["frozen_features"] = features = (
            lambda images_u8: map_batches(lambda x: frozen(x).float(), images_u8).cpu().numpy())
        with torch.no_grad():
            state.extra["probe"] = simclr.LinearProbe(state.seed).fit(
                features(state.images), state.labels.cpu().numpy())
        replace_classifier(state.net, state.num_classes)
        state.net = state.net.to(memory_format=torch.channels_last)
        return log

    def variants(self, state: TrainingState, images_u8) -> dict:
        return {"linear_probe": state.extra["probe"].predict(state.extra["frozen_features"](images_u8))}


@register
class SimCLR(FineTuned):
    """SimCLR pre-training on the training images (:mod:`harness.nn.simclr`), then fine-tuning."""

    name = "simclr"
    reference = "Chen et al. 2020"
    settings = {
        "epochs": 200,              # pre-training passes over the training set
        "batch_size": 512,          # images per step (two views each)
        "lr": 0.5,                  # peak SGD learning rate, cosine-annealed per step
        "temperature": 0.5,         # NT-Xent temperature (SimCLR's CIFAR-10 value)
        "projection_dim": 128,      # projection-head output width
        "crop_scale_min": 0.2,      # random resized crop: smallest area fraction kept
        "finetune_lr_scale": 1.0,   # fine-tuning learning rate = the network's lr x this
    }

    @classmethod
    def training_passes(cls, images: int, epochs: int, settings: dict) -> float:
        # Fine-tuning, and pre-training on two views per image.
        return float(images * epochs + 2 * images * settings["epochs"])

    @classmethod
    def dry_run_budget(cls, hyperparameters: dict, settings: dict) -> tuple[dict, dict]:
        return {}, {"epochs": 1}  # one pre-training epoch

    def pretrain(self, state: TrainingState, encoder, head_name: str) -> dict:
        from ..nn import simclr
        from ..nn.batches import normalization_constants

        scale, shift = normalization_constants(state.images.device)
        scale, shift = scale.view(1, 3, 1, 1) * 255, shift.view(1, 3, 1, 1)
        feature_dim = state.net.get_submodule(head_name).in_features
        return simclr.pretrain(encoder, feature_dim, state.images, self.settings, state.hp,
                               state.generator, standardize=lambda x: x * scale + shift)


@register
class SimCLRImageNet(FineTuned):
    """Fine-tuning from user-supplied ImageNet SimCLR weights (``--simclr-weights``)."""

    name = "simclr_imagenet"
    reference = "Chen et al. 2020 (ImageNet weights)"
    settings = {
        "pretrained_weights": "",  # state-dict file for this network (from --simclr-weights)
        "pretrained_sha256": "",   # its checksum, so that a changed file never reuses old results
        "finetune_lr_scale": 1.0,  # fine-tuning learning rate = lr x this
    }

    def pretrain(self, state: TrainingState, encoder, head_name: str) -> dict:
        from ..nn import simclr

        if not self.settings["pretrained_weights"]:
            raise ValueError("the 'simclr_imagenet' method needs the setting pretrained_weights "
                             "(a state-dict file for this network; --simclr-weights)")
        return simclr.load_pretrained(state.net, self.settings["pretrained_weights"], head_name)
