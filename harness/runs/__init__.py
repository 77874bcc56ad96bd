"""Runs: a frozen spec per training run (``spec``), executing one (``training``), the result store
(``store``), the runner that trains only what the store lacks (``runner``) through an executor
(``executors``: local processes, GPU slots, Slurm), and merging stores (``merge``)."""
