"""harness.nn.optim: the recipe's SGD, which every method's default optimizer is."""

import torch

from harness.learners.nn_hyperparameters import AIRBENCH_CNN, SMALL_CNN
from harness.methods.standard import ERM
from harness.nn.optim import cosine, sgd


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_sgd_takes_momentum_weight_decay_and_nesterov_from_the_recipe():
    group = sgd(_params(), 0.2, AIRBENCH_CNN).param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == \
        (0.2, AIRBENCH_CNN["momentum"], AIRBENCH_CNN["weight_decay"], True)


def test_a_recipe_without_nesterov_or_weight_decay_has_neither():
    group = sgd(_params(), 0.1, {"momentum": 0.9}).param_groups[0]
    assert (group["nesterov"], group["weight_decay"]) == (False, 0.0)
    assert sgd(_params(), 0.1, SMALL_CNN).param_groups[0]["nesterov"] is False  # quick unchanged


def test_the_default_method_optimizer_is_the_recipes_sgd():
    class State:
        hp = AIRBENCH_CNN

    group = ERM().optimizer(State(), _params(), 0.2).param_groups[0]
    assert group["nesterov"] and group["momentum"] == AIRBENCH_CNN["momentum"]


def test_nesterov_changes_the_trajectory():
    """A flag that reaches the optimizer changes what it does (not only what it records)."""
    def run(nesterov):
        p = torch.nn.Parameter(torch.tensor([1.0]))
        opt = sgd([p], 0.1, {"momentum": 0.9, "nesterov": nesterov})
        for _ in range(3):
            opt.zero_grad()
            (p ** 2).sum().backward()
            opt.step()
        return float(p.detach())

    assert run(True) != run(False)


def test_cosine_runs_from_one_to_zero():
    assert cosine(0, 10) == 1.0 and abs(cosine(10, 10)) < 1e-12 and cosine(20, 10) == cosine(10, 10)
