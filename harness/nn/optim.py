"""The optimizer recipe shared by supervised training, SimCLR pre-training and SGHMC.

Kept apart from the engine so that the methods building on it (SimCLR, SGHMC) and the engine
import it without importing each other.
"""

from __future__ import annotations

import math


def cosine(step: int, total_steps: int) -> float:
    """Learning-rate factor of a cosine decay from 1 to 0 over ``total_steps``."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def sgd(params, lr: float, hp: dict):
    """SGD with the recipe's momentum, weight decay and Nesterov flag (``hp["momentum"]``,
    ``hp["weight_decay"]``, ``hp["nesterov"]``; a recipe without the last two has none)."""
    import torch

    return torch.optim.SGD(params, lr=lr, momentum=hp["momentum"], weight_decay=hp.get("weight_decay", 0.0),
                           nesterov=hp.get("nesterov", False))
