"""A pytest plugin for child sessions of the tests (``-p tests.small_designs``): sequential
designs end at 10 seeds per arm (looks 5, 10), so a test of the sequential path trains two looks
at most. Only the maximum changes; the boundaries are the design's for those looks."""

from harness.experiments import protocols


def pytest_configure(config):
    protocols.MAX_SEEDS = 10
    protocols.MAX_SEEDS_DEVICE_BOUND = 10
