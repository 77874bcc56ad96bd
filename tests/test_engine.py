"""The neural-network engine on tiny inputs: augmentation, layout, contract, regimes, devices."""

import numpy as np
import pytest
import torch

from harness.nn import batches, networks, sam
from harness import data, methods
from harness.learners import models


def tiny_images(per_class=12, size=16, classes=2, seed=0):
    """Solid-colour images, one colour per class, with noise: easy to learn in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    base = np.array([[220, 30, 30], [30, 30, 220], [30, 220, 30]])[:classes]
    x = base[y][:, None, None, :] + rng.integers(-20, 20, size=(len(y), size, size, 3))
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def reference_crop_flip(batch, padding, dy, dx, flip):
    out = []
    for i in range(len(batch)):
        padded = torch.nn.functional.pad(batch[i], (0, 0, padding, padding, padding, padding))
        img = padded[dy[i]:dy[i] + batch.shape[1], dx[i]:dx[i] + batch.shape[2]]
        out.append(img.flip(1) if flip[i] else img)
    return torch.stack(out)


def test_batched_crop_flip_matches_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    batch = torch.randn(6, 8, 8, 3, generator=g)
    dy, dx = torch.tensor([0, 4, 2, 8, 1, 3]), torch.tensor([8, 0, 2, 5, 7, 4])
    flip = torch.tensor([True, False, True, False, False, True])
    got = batches.crop_flip_at(batch, 4, dy, dx, flip)
    assert torch.equal(got, reference_crop_flip(batch, 4, dy, dx, flip))
    centred = batches.crop_flip_at(batch, 4, torch.full((6,), 4), torch.full((6,), 4), torch.zeros(6, dtype=bool))
    assert torch.equal(centred, batch)  # offset = padding and no flip is the identity


def test_augmentation_is_drawn_per_image_not_per_batch():
    batch = torch.arange(16 * 16 * 3, dtype=torch.float32).reshape(1, 16, 16, 3).repeat(64, 1, 1, 1)
    out = batches.crop_flip(batch, 2, torch.Generator().manual_seed(0))
    distinct = {tuple(img.flatten()[:50].tolist()) for img in out}
    assert len(distinct) > 10  # one draw for the whole batch would give a single variant


def test_model_layout_is_channels_last_without_a_copy():
    nhwc = torch.randn(2, 8, 8, 3)
    nchw = batches.to_model_layout(nhwc)
    assert nchw.shape == (2, 3, 8, 8)
    assert nchw.is_contiguous(memory_format=torch.channels_last)
    assert nchw.data_ptr() == nhwc.data_ptr()


def test_normalize():
    x = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor(data.CIFAR_MEAN)) / torch.tensor(data.CIFAR_STD)
    with batches.standardized_by(data.CIFAR_MEAN, data.CIFAR_STD):
        assert torch.allclose(batches.normalize(x)[0, 0, 0], expected)


def test_resnet34_has_the_cifar_stem():
    net = networks.resnet34_cifar(10)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 21_000_000 < networks.count_parameters(net) < 21_500_000


def small(**overrides):
    params = dict(models.DEFAULTS["small_cnn"], width=4, epochs=8, batch_size=8, lr=0.05)
    params.update(overrides)
    return models.build("small_cnn", seed=0, **params)


def test_torch_classifier_contract_learns_and_is_deterministic_on_cpu():
    x, y = tiny_images()
    model = small()
    assert model.fit(x, y) is model
    pred = model.predict(x)
    assert pred.dtype == np.int64 and pred.shape == (len(x),)
    assert np.mean(pred == y) >= 0.9
    again = small().fit(x, y)
    assert all(torch.equal(a, b) for a, b in zip(model.net.state_dict().values(),
                                                  again.net.state_dict().values()))
    assert model.log["epochs_run"] == 8 and model.log["images_per_second"] > 0


def test_sample_weights_change_the_gradient():
    x, y = tiny_images()
    plain = small(epochs=1).fit(x, y).net.state_dict()
    weighted = small(epochs=1).fit(x, y, sample_weight=np.where(y == 1, 5.0, 0.2)).net.state_dict()
    assert not all(torch.equal(a, b) for a, b in zip(plain.values(), weighted.values()))


def test_overfit_method_stops_once_the_training_set_is_fit():
    x, y = tiny_images()
    model = small(epochs=10).fit(x, y, method=methods.create("overfit", epoch_scale=3,
                                                             lr_scale=1.0))
    assert model.log["epochs_run"] < 30
    assert (model.predict(x) == y).all()


def test_the_fit_check_agrees_with_predicting_everything_and_stops_at_the_first_error():
    x, y = tiny_images()
    model = small(epochs=1).fit(x, y)
    images, labels = model.train_images, model.train_labels
    predicted = batches.predict_logits(model.net, images, batch_size=8).argmax(1)
    calls = []
    hook = model.net.register_forward_hook(lambda *a: calls.append(1))
    for wanted in (labels, predicted, 1 - predicted, torch.cat([predicted[:8], 1 - predicted[8:]])):
        calls.clear()
        assert batches.classifies_all(model.net, images, wanted, batch_size=8) == bool((predicted == wanted).all())
    assert len(calls) == 2  # the last labels are wrong from the second batch on: two batches run
    hook.remove()


def test_runs_sharing_a_network_compute_its_logits_once_per_images_until_a_stage_changes_it():
    """ERM, a post-hoc correction and Laplace's MAP variant predict the same rows with one
    trained network: one forward pass per rows, the same predictions as computing each afresh,
    and a post-training stage (which may change the network) makes them be computed again."""
    x, y = tiny_images()
    model = small(epochs=1).fit(x, y)
    calls = []
    hook = model.net.register_forward_hook(lambda *a: calls.append(1))
    fresh = batches.predict_logits(model.net, model.images(x)).argmax(1).numpy()
    calls.clear()
    erm = model.predict(x)
    assert len(calls) == 1 and (erm == fresh).all()
    model.use_method(methods.create("logit_adjustment", tau=1.0))
    model.predict(x)
    assert len(calls) == 1  # the same rows: the ERM run's logits, adjusted
    model.use_method(methods.create("erm"))
    assert (model.predict(x) == erm).all() and len(calls) == 1  # the adjustment was made on a copy
    model.use_method(methods.create("laplace"))  # a stage of its own: logits computed again
    calls.clear()
    assert (model.predict_variants(x)["map"] == erm).all() and len(calls) == 1
    model.predict_variants(x)
    assert len(calls) == 1
    hook.remove()


def test_images_must_be_uint8_nhwc():
    with pytest.raises(ValueError, match="uint8 NHWC"):
        small().fit(np.zeros((4, 5), dtype=np.float32), np.array([0, 1, 0, 1]))


def test_device_resolution():
    assert batches.resolve_device("cpu") == "cpu"
    assert batches.resolve_device("auto") in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            batches.resolve_device("cuda")
    with pytest.raises(ValueError):
        batches.resolve_device("tpu")


def test_epoch_size_keeps_oversampled_epochs_as_long_as_standard_ones():
    x, y = tiny_images()
    expanded = np.concatenate([np.arange(len(y))] * 3)
    model = small(epochs=2).fit(x[expanded], y[expanded], epoch_size=len(y))
    assert model.log["images_seen"] == 2 * len(y)


@pytest.mark.skipif(__import__("harness.data", fromlist=["locate"]).locate("cifar10/cifar10-jpeg.zip") is None,
                    reason="CIFAR-10 pack not present")
def test_throughput_command_trains_reports_and_calibrates_the_plan(capsys, tmp_path):
    import json

    from harness import __main__ as cli
    from harness.experiments import plan

    calibration = tmp_path / "calibration.json"
    assert cli.main(["throughput", "--images", "256", "--device", "cpu",
                     "--calibration", str(calibration)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 256 and report["images_per_second"] > 0
    assert 0.0 <= report["test_accuracy"] <= 1.0 and report["device"] == "cpu"
    figure = plan.load_calibration(calibration)["small_cnn/cpu"]
    assert figure["measured"] and figure["images_per_second"] == round(report["images_per_second"], 1)


def test_throughput_command_takes_every_image_network():
    """`throughput --arch` offers each registered image network (the laptop profile's
    airbench_cnn included, so that plan -m laptop can be calibrated on another chip)."""
    from harness import __main__ as cli
    from harness.learners import models

    parser = cli.build_parser()
    for arch in sorted(models.DEVICE_BOUND):
        assert parser.parse_args(["throughput", "--arch", arch]).arch == arch
    with pytest.raises(SystemExit):
        parser.parse_args(["throughput", "--arch", "not_a_network"])


def test_minority_half_radii_scale_the_rarer_classes():
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 4 + [3] * 1)
    radii = sam.minority_half_radii(labels, 4, rho=0.1, scale=3.0)
    per_class = {int(c): float(radii[labels == c][0]) for c in range(4)}
    assert per_class == pytest.approx({0: 0.1, 1: 0.3, 2: 0.1, 3: 0.3})


def test_sam_method_with_zero_radius_matches_standard_training():
    x, y = tiny_images()
    plain = small(epochs=2).fit(x, y)
    zero = small(epochs=2).fit(x, y, method=methods.create("sam", rho=0.0))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain.net.parameters(), zero.net.parameters()))
    moved = small(epochs=2).fit(x, y, method=methods.create("asymmetric_sam", rho=0.5))
    assert not all(torch.allclose(a, b) for a, b in zip(plain.net.parameters(), moved.net.parameters()))


def test_flatness_metrics_are_measured_when_asked():
    x, y = tiny_images()
    assert small(epochs=1).fit(x, y).extra_metrics() == {}
    metrics = small(epochs=2, hessian_top_k=3, hessian_samples=16, loss_directions=2).fit(x, y).extra_metrics()
    values = metrics["hessian_top_eigenvalues"]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    curve = metrics["loss_along_direction"]
    assert curve["alpha"][5] == 0.0 and len(curve["loss"]) == 11 and len(curve["losses"]) == 2
    assert curve["losses"][0] != curve["losses"][1]  # two different random directions
    assert np.allclose(curve["loss"], np.mean(curve["losses"], 0))
    assert curve["losses"][0][5] == pytest.approx(curve["losses"][1][5])  # alpha = 0: the minimum
