"""Bayesian inference over the network's weights (Figure 8): diagonal Laplace and SGHMC.

The numerics live in :mod:`harness.nn.bayesian` and :mod:`harness.nn.sghmc`; these classes plug them
into the training loop's hooks. Their predictives and the MAP variant are evaluated alike, in
strict fp32 (:mod:`harness.nn.batches`), so that Figure 8's paired gains compare the methods, not
bf16 against fp32.
"""

from __future__ import annotations

from .base import Method, TrainingState, register


@register
class Laplace(Method):
    """Standard training, then a diagonal Laplace posterior (laplace-torch); predictions are its
    GLM posterior predictive with the probit approximation. The MAP network's predictions are
    recorded beside them as the variant ``map``. Post-hoc: it trains exactly as ERM, so a
    Laplace run and the ERM run at the same cell share one trained network."""

    name = "laplace"
    requires = frozenset({"rows", "loop", "posterior", "logits"})
    reference = "Daxberger et al. 2021"
    trains_like = "erm"
    # laplace-torch imports torchvision (and needs its compiled ops to match torch); asdl is the
    # backend of its GGN diagonal, which laplace.curvature drops silently when asdl is missing.
    libraries = ("torchvision", "laplace", "laplace.curvature.asdl")
    settings = {
        "subset": "last_layer",  # which weights get a diagonal posterior ("last_layer" or "all")
    }
    variant_names = ("map",)

    @classmethod
    def post_training_passes(cls, images: int, settings: dict) -> float:
        return float(images)  # the GGN diagonal: one pass over the training images

    def finish(self, state: TrainingState) -> dict:
        from ..nn.bayesian import fit_diagonal_laplace
        from ..nn.batches import network_inputs

        state.extra["laplace"] = la = fit_diagonal_laplace(
            state.net, network_inputs(state.images), state.labels, self.settings["subset"])
        return {"laplace_prior_precision": float(la.prior_precision.mean())}

    def probabilities(self, state: TrainingState, images_u8):
        from ..nn.batches import map_batches

        la = state.extra["laplace"]
        return map_batches(lambda x: la(x, pred_type="glm", link_approx="probit"), images_u8)

    def variants(self, state: TrainingState, images_u8) -> dict:
        return {"map": state.network_logits(images_u8).argmax(1).cpu().numpy().astype("int64")}


@register
class SGHMC(Method):
    """Cyclical SGHMC in place of SGD for the whole budget (:mod:`harness.nn.bayesian`); predictions
    average the softmax of the samples collected at the end of each cycle."""

    name = "sghmc"
    requires = frozenset({"rows", "loop", "logits"})
    reference = "Chen et al. 2014; Zhang et al. 2020"
    settings = {
        "temperature": 1.0,      # posterior temperature (1: the Bayesian posterior)
        "cycles": 3,             # cosine step-size cycles over the training epochs
        "samples_per_cycle": 1,  # samples kept from the last epochs of each cycle
    }

    @classmethod
    def dry_run_budget(cls, hyperparameters: dict, settings: dict) -> tuple[dict, dict]:
        return {"epochs": settings["cycles"]}, {}  # an epoch per cycle, each sampled

    def prepare(self, state: TrainingState) -> dict:
        from ..nn.bayesian import sample_epochs
        from ..nn.sghmc import SampleAverager

        state.extra["collect_at"] = sample_epochs(state.epochs, self.settings["cycles"],
                                                  self.settings["samples_per_cycle"])
        state.extra["samples"] = SampleAverager()
        return {}

    def optimizer(self, state: TrainingState, params, lr: float):
        import torch

        from ..nn.bayesian import sghmc_optimizer

        # The noise is drawn on the run's device, by a generator of its own (not the one that
        # orders and augments the batches). On the CPU it is the generator SGHMC always had.
        noise = torch.Generator(device=state.device or "cpu").manual_seed(state.seed)
        make = sghmc_optimizer(len(state.labels), self.settings["temperature"], noise)
        return make(params, lr, state.hp)

    def lr_factor(self, step: int, total_steps: int) -> float:
        from ..nn.bayesian import cyclical_cosine

        return cyclical_cosine(self.settings["cycles"])(step, total_steps)

    def epoch_end(self, state: TrainingState, epoch: int) -> None:
        if epoch in state.extra["collect_at"]:
            state.extra["samples"].collect(state.net)

    def probabilities(self, state: TrainingState, images_u8):
        from ..nn.batches import map_batches

        return map_batches(state.extra["samples"].predict_proba, images_u8)
