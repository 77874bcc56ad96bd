"""Training methods for imbalanced data: one class per method, in a registry by name.

:mod:`~harness.methods.base` defines the protocol (:class:`Method` and its hooks), the registry
and a method's identity; the other modules are the methods themselves:

* :mod:`~harness.methods.standard`: ``erm``, ``oversample``, ``reweight``, ``overfit``, ``sam``,
  ``asymmetric_sam``;
* :mod:`~harness.methods.bayesian`: ``laplace``, ``sghmc``;
* :mod:`~harness.methods.pretraining`: ``simclr``, ``simclr_imagenet``;
* :mod:`~harness.methods.longtail`: ``logit_adjustment``, ``logit_adjusted_loss``,
  ``balanced_softmax``, ``ldam_drw``, ``focal``, ``class_balanced``;
* :mod:`~harness.methods.resampling`: ``smote``, ``undersample`` (imbalanced-learn).

A method of your own is one class (see docs/extending.md)::

    from harness.methods import Method, register

    @register
    class SquaredHinge(Method):
        name = "squared_hinge"
        requires = frozenset({"rows", "loss"})
        def loss(self, logits, labels, state): ...
"""

# standard first: the post-hoc methods of the others name its erm as their base (trains_like)
from . import standard  # noqa: F401, I001  (it registers)
from . import bayesian, longtail, pretraining, resampling  # noqa: F401  (they register)
from .base import (CAPABILITIES, ENTRY_POINT_GROUP, METHODS, Method, MethodError, TrainingState,
                   TrainPlan, builtin, create, for_spec, get, identity, import_path, load_path,
                   register, resolve, zoo)

# The registry as the package defines it: what a freshly started worker process has.
BUILTIN_METHODS = dict(METHODS)

__all__ = ["CAPABILITIES", "ENTRY_POINT_GROUP", "METHODS", "BUILTIN_METHODS", "Method",
           "MethodError", "TrainPlan", "TrainingState", "builtin", "create", "for_spec", "get",
           "identity", "import_path", "load_path", "register", "resolve", "zoo"]
