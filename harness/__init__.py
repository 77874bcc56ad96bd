"""imbalance-claims harness: data, imbalance construction, models, methods, runs, store, stats, report.

The harness never imports pytest; ``fixtures/`` connects it to the claim tests.
"""

# Part of every run spec: bump it when a change alters how any result is computed, so that the
# store trains again instead of serving results of the old code.
__version__ = "0.6.0"  # 0.6.0: specs in sections, method settings without prefixes (0.5.0: fingerprints; 0.4.0: methods as objects)
