"""Speed of the suite's units of work (pytest-benchmark; medians in the benchmark table).

Each benchmark is one real run of a quick-profile grid cell, or a warm-store grid read, so a
slowdown in the harness shows up here before it shows up in the suite's wall time.
"""

import pytest

from harness.data import imbalance
from harness.runs import training
from harness.runs.runner import Runner
from harness.runs.spec import make_spec
from harness.runs.store import ResultStore

from .conftest import shared_data_available

RATIOS = (0.02, 0.05, 0.1, 0.3, 1.0)


@pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")
def test_benchmark_xgboost_adult_run(benchmark):
    spec = make_spec("adult", "xgboost", "erm", imbalance.binary_counts(10_000, 0.1), RATIOS, seed=0)
    record = benchmark.pedantic(training.execute, args=(spec,), kwargs={"n_jobs": 2}, rounds=3)
    assert record["metrics"]["train"]["counts"] == [9091, 909]


@pytest.mark.skipif(not shared_data_available("covtype/covtype-sample.csv.gz"), reason="no sample")
def test_benchmark_linear_svm_covtype_run(benchmark):
    spec = make_spec("covtype", "linear_svm", "erm", imbalance.binary_counts(10_000, 0.1), RATIOS, seed=0)
    record = benchmark.pedantic(training.execute, args=(spec,), rounds=3)
    assert record["metrics"]["train"]["counts"] == [9091, 909]


def test_benchmark_warm_store_grid_read(benchmark, tmp_path, synthetic):
    specs = [make_spec("synthetic", "spy", "erm", (200, n), RATIOS, seed)
             for n in (10, 20, 40, 60) for seed in range(5)]
    Runner(ResultStore(tmp_path)).run(specs)

    def warm_read():
        runner = Runner(ResultStore(tmp_path))
        runner.run(specs)
        return runner

    runner = benchmark(warm_read)
    assert runner.trained == 0 and runner.loaded == len(specs)
