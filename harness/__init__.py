"""imbalance-claims harness: data, imbalance construction, models, methods, runs, store, stats, report.

The harness never imports pytest; ``fixtures/`` connects it to the claim tests.
"""

# Part of every run spec: bump it when a change alters how any result is computed, so that the
# store trains again instead of serving results of the old code.
__version__ = "0.5.0"  # 0.5.0: run records carry fingerprints of what their seed drew (0.4.0: methods as objects)
