"""Strict fp32 on CUDA for the computations whose numbers are compared, not trained with.

Training runs under bf16 autocast on CUDA (:mod:`harness.learners.engine`), and PyTorch lets
cuDNN run fp32 convolutions as TF32 (``torch.backends.cudnn.allow_tf32`` is True by default:
~1e-3 relative error). Neither is acceptable where results are compared or measured:

* predictions (:func:`harness.nn.batches.each_batch`, which every predictor goes through): paired
  comparisons put one method's predictions beside another's (Figure 8's gain of Laplace and
  SGHMC over the MAP network), so all of them are computed with the same, full fp32 numerics;
  otherwise a near-tie's argmax flips with the precision rather than with the method;
* Hessian-vector products and loss curves (:mod:`harness.nn.flatness`) and the Laplace fit
  (:func:`harness.nn.bayesian.fit_diagonal_laplace`), which are meant to be fp32.

These passes are a small fraction of a run's compute, so full fp32 costs little. On the CPU, at
torch's default settings, none of these switches changes a number (the autocast is CUDA's, and
TF32 is a CUDA format).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def strict_fp32():
    """Within the block: CUDA autocast off, and fp32 convolutions (cuDNN) and matmuls (cuBLAS)
    in IEEE fp32 rather than TF32. The previous settings come back on exit, also after an error.

    Usable as a decorator too. cuBLAS is switched by ``torch.set_float32_matmul_precision``
    ("highest" is ``torch.backends.cuda.matmul.allow_tf32 = False``), whose previous value comes
    back exactly (a "medium" is not turned into "high"); cuDNN by its legacy ``allow_tf32`` flag.
    Both are torch's older TF32 switches (torch >= 2.3 has them): torch refuses a process that
    mixes them with the newer ``fp32_precision`` settings, and the harness sets neither elsewhere.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        # Disabled explicitly, so that a caller inside the training loop's autocast (a hook)
        # still gets fp32.
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])
