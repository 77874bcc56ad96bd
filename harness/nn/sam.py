"""Sharpness-aware minimization (Foret et al. 2020) with a per-sample ascent radius.

SAM takes an ascent step ``e = rho * g / ||g||`` (``g`` the batch gradient), computes the gradient
at ``w + e``, returns to ``w`` and lets the base optimizer step with that gradient.

Asymmetric SAM. The paper improves on SAM "by increasing the ascent step size in SAM's inner loop
for minority samples". We give each sample ``i`` a radius ``rho_i`` (in practice one per class,
larger for minority classes) and take the ascent step

    e = (1/B) sum_i rho_i * grad l_i(w) / ||g||,      g = (1/B) sum_i grad l_i(w),

so each sample's pull on the ascent direction is scaled by its own radius. Consequences, which
``tests/test_sam.py`` checks:

* equal radii ``rho_i = rho`` give exactly SAM's ``rho * g / ||g||``;
* all radii zero give ``e = 0``: the step is the base optimizer's;
* raising the minority radius lengthens the ascent step along the minority-loss gradient, i.e.
  the minimum found must be flat for minority samples over a larger neighbourhood.

Costs: SAM needs two backward passes per step; asymmetric SAM three (the plain and the
radius-weighted gradient at ``w``, then the gradient at ``w + e``).

The radii are fixed for a run, so they are validated once, where they are made
(:func:`minority_half_radii`, :func:`class_radii`), not at every step: a check of a CUDA tensor's
values is a host-device synchronization. The one value a step still reads back is whether the
batch's radii are all equal (the plain-SAM path, one backward pass fewer); a caller that knows
it (one radius for the whole run) passes ``uniform=True`` and the step reads nothing back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def ascent_vector(params: list[torch.Tensor], losses: torch.Tensor, radii: torch.Tensor,
                  eps: float = 1e-12, uniform: bool | None = None) -> list[torch.Tensor]:
    """The (asymmetric) SAM perturbation for per-sample ``losses`` with per-sample ``radii``.

    ``radii`` are taken as valid (non-negative: checked where they are made). ``uniform``:
    whether all radii are equal; None checks it (one read of a value from the device).
    """
    if radii.shape != losses.shape:  # shapes live on the host: no synchronization
        raise ValueError(f"one radius per sample: radii {tuple(radii.shape)} vs losses {tuple(losses.shape)}")
    grads = torch.autograd.grad(losses.mean(), params, retain_graph=True)
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)) + eps
    if uniform is None:
        uniform = bool((radii == radii[0]).all())
    if uniform:  # plain SAM: one backward pass suffices
        weighted = [radii[0] * g for g in grads]
    else:
        weighted = torch.autograd.grad((radii * losses).mean(), params, retain_graph=True)
    return [w.detach() / norm for w in weighted]


def sam_step(params: list[torch.Tensor], per_sample_loss: Callable[[], torch.Tensor],
             radii: torch.Tensor, optimizer: torch.optim.Optimizer,
             uniform: bool | None = None) -> torch.Tensor:
    """One SAM / asymmetric-SAM step; returns the mean loss at ``w`` (before the step).

    ``per_sample_loss()`` evaluates the model on the current batch and returns one loss per
    sample; it is called twice (at ``w`` and at ``w + e``). ``radii`` come from
    :func:`minority_half_radii` or :func:`class_radii` (validated there); ``uniform`` as in
    :func:`ascent_vector`.
    """
    losses = per_sample_loss()
    perturbation = ascent_vector(params, losses, radii, uniform=uniform)
    with torch.no_grad():
        for p, e in zip(params, perturbation):
            p.add_(e)
    optimizer.zero_grad(set_to_none=True)
    per_sample_loss().mean().backward()
    with torch.no_grad():
        for p, e in zip(params, perturbation):
            p.sub_(e)
    optimizer.step()
    return losses.detach().mean()


def class_radii(labels: torch.Tensor, radius_per_class: torch.Tensor) -> torch.Tensor:
    """Per-sample radii from a per-class table (e.g. ``[rho, rho * k]`` for majority, minority).

    Raises ValueError for a negative (or NaN) radius in the table (checked on the table's own
    device, before it moves to the labels')."""
    if not bool((radius_per_class >= 0).all()):  # NaN fails too
        raise ValueError(f"SAM radii must be non-negative; got {radius_per_class.tolist()}")
    return radius_per_class.to(labels.device)[labels]


def minority_half_radii(labels: torch.Tensor, num_classes: int, rho: float,
                        scale: float) -> torch.Tensor:
    """Per-sample radii: ``rho`` for the more frequent half of the classes in ``labels``,
    ``rho * scale`` for the rarer half (binary: the minority class; CIFAR-10: the 5 rarest).

    Raises ValueError for a negative (or NaN) ``rho`` or ``scale`` (the radii are validated
    here, once)."""
    if not (rho >= 0 and scale >= 0):  # NaN fails too
        raise ValueError(f"SAM radii must be non-negative: rho={rho}, scale={scale}")
    counts = torch.bincount(labels, minlength=num_classes)
    rarest = torch.argsort(counts, stable=True)[: num_classes // 2]
    per_class = torch.full((num_classes,), float(rho), device=labels.device)
    per_class[rarest] = rho * scale
    return per_class[labels]
