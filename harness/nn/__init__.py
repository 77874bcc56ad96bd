"""Neural-network numerics, free of any notion of a training method: the device data path
(``batches``), the optimizer recipe (``optim``), architectures (``networks``), SAM's step
(``sam``), Hessian spectra and loss curves (``flatness``), SimCLR (``simclr``), diagonal Laplace
and cyclical SGHMC (``bayesian``, ``sghmc``), and the strict-fp32 scope of predictions and
measurements (``precision``). Methods and the engine build on these."""
