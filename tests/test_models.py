"""The fit/predict contract, checked for every registered tabular model.

The neural networks follow the same contract on images; ``tests/test_engine.py`` checks them.
"""

import numpy as np
import pytest

from harness.learners import models

TABULAR = sorted(name for name in models.MODELS if not models.device_bound(name))


def blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4 == 0).astype(np.int64)  # 25% minority
    x = rng.normal(size=(n, 5)).astype(np.float32) + 2.5 * y[:, None]
    return x, y


@pytest.mark.parametrize("name", TABULAR)
def test_contract_fit_predict_labels_and_accuracy(name):
    x, y = blobs()
    model = models.build(name, seed=0)
    assert model.fit(x, y) is model
    pred = model.predict(x)
    assert pred.dtype == np.int64 and pred.shape == (len(x),)
    assert set(np.unique(pred)) <= {0, 1}
    assert np.mean(pred == y) > 0.9  # separable blobs


@pytest.mark.parametrize("name", TABULAR)
def test_contract_same_seed_same_predictions(name):
    x, y = blobs()
    a = models.build(name, seed=3).fit(x, y).predict(x)
    b = models.build(name, seed=3).fit(x, y).predict(x)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", TABULAR)
def test_contract_sample_weight_shifts_decisions_toward_the_heavy_class(name):
    rng = np.random.default_rng(1)
    y = (np.arange(400) % 5 == 0).astype(np.int64)
    x = rng.normal(size=(400, 2)).astype(np.float32) + 0.6 * y[:, None]  # heavily overlapping
    plain = models.build(name, seed=0).fit(x, y).predict(x).mean()
    weights = np.where(y == 1, 4.0, 1.0)
    weighted = models.build(name, seed=0).fit(x, y, sample_weight=weights).predict(x).mean()
    assert weighted > plain  # up-weighting the minority predicts it more often


def test_paper_hyperparameters():
    assert models.DEFAULTS["xgboost"] == {"n_estimators": 100, "subsample": 0.5, "eta": 0.3, "max_depth": 6}
    assert models.DEFAULTS["linear_svm"]["dual"] is False
    assert models.DEFAULTS["linear_svm"]["max_iter"] == 1000


@pytest.mark.parametrize("name", ["xgboost", "linear_svm"])
def test_tabular_models_take_rows_and_weights_only(name):
    assert models.capabilities(name) == {"rows", "features"}


def test_unknown_model_and_hyperparameter_errors():
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        models.build("svm", seed=0)
    with pytest.raises(ValueError, match="no hyperparameter"):
        models.build("xgboost", seed=0, depth=3)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_contract_an_initialization_digest_follows_the_seed(name):
    """A model that reports ``init_digest`` (the networks) gives another one for another seed
    and the same one for the same seed: the fingerprint that the seed reached it."""
    if models.device_bound(name):
        x = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
        y, params = np.arange(16) % 2, {"epochs": 1, "image_size": 16}
    else:
        (x, y), params = blobs(), {}
        if name == "mlp2d":
            x, params = x[:, :2], {"steps": 2}
    digests = [getattr(models.build(name, seed=s, **params).fit(x, y), "init_digest", None) for s in (0, 0, 1)]
    if digests[0] is None:
        assert not models.device_bound(name) and name != "mlp2d", f"{name} reports no init_digest"
        return
    assert digests[0] == digests[1] != digests[2]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_contract_every_model_s_declared_libraries_import(name):
    """What a model declares it imports (the preflight's list, harness.runs.preflight) imports
    in this environment; the networks declare torch."""
    from harness.runs import preflight

    assert models.libraries(name), f"{name} declares no libraries"
    assert preflight.import_failures(models.libraries(name)) == []
    if models.device_bound(name) or name == "mlp2d":
        assert "torch" in models.libraries(name)


def test_register_model_takes_its_libraries(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(models.MODELS))
    monkeypatch.setattr(models, "DEFAULTS", dict(models.DEFAULTS))
    monkeypatch.setattr(models, "LIBRARIES", dict(models.LIBRARIES))
    models.register_model("spy_with_libraries", object, {}, libraries=("json",))
    assert models.libraries("spy_with_libraries") == ("json",)
    with pytest.raises(ValueError, match="libraries must be module names"):
        models.register_model("another", object, {}, libraries="json")
