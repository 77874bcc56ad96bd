"""Diagonal Laplace and SGHMC as the engine uses them: scales, schedules, predictive."""

import numpy as np
import pytest
import torch

from harness.nn import bayesian
from harness import methods
from harness.nn.batches import predict_logits
from tests.test_engine import small, tiny_images


def test_sample_epochs_are_the_ends_of_each_cycle():
    assert bayesian.sample_epochs(15, 3, 1) == {4, 9, 14}
    assert bayesian.sample_epochs(15, 1, 3) == {12, 13, 14}
    assert bayesian.sample_epochs(6, 3, 2) == {0, 1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="epochs >= cycles"):
        bayesian.sample_epochs(2, 3, 1)


def test_cyclical_cosine_restarts_each_cycle():
    schedule = bayesian.cyclical_cosine(3)
    factors = [schedule(step, 30) for step in range(30)]
    assert factors[0] == factors[10] == factors[20] == 1.0
    assert all(a > b for a, b in zip(factors[:9], factors[1:10]))  # decays within a cycle
    assert 0 < factors[9] < 0.03


def test_sghmc_at_zero_temperature_is_the_sgd_recipe():
    """lr / N, friction 1 - momentum and prior precision wd * N reproduce torch's SGD exactly:
    a wrong scale on any of the three breaks this."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, generator=g), torch.randn(32, generator=g)
    hp = {"momentum": 0.9, "weight_decay": 5e-3}
    weights = {}
    for name in ("sgd", "sghmc"):
        w = torch.zeros(3, requires_grad=True)
        opt = (torch.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=5e-3) if name == "sgd" else
               bayesian.sghmc_optimizer(32, 0.0, torch.Generator())([w], 0.1, hp))
        for _ in range(20):
            opt.zero_grad()
            ((x @ w - y) ** 2).mean().backward()
            opt.step()
        weights[name] = w.detach()
    assert torch.allclose(weights["sgd"], weights["sghmc"], atol=1e-6)


def test_sghmc_method_at_zero_temperature_with_one_sample_behaves_like_standard_training():
    x, y = tiny_images()
    plain = small(epochs=3).fit(x, y)
    chain = small(epochs=3).fit(x, y, method=methods.create(
        "sghmc", temperature=0.0, cycles=1, samples_per_cycle=1))
    assert len(chain.state.extra["samples"].samples) == 1
    # Not bit-identical: under a schedule SGHMC scales each new gradient by the current step size,
    # torch's SGD scales the whole momentum buffer. Same problem, same solution.
    assert np.array_equal(chain.predict(x), plain.predict(x)) and np.mean(chain.predict(x) == y) >= 0.9
    warm = small(epochs=6).fit(x, y, method=methods.create("sghmc", cycles=3,
                                                           samples_per_cycle=1))
    assert len(warm.state.extra["samples"].samples) == 3
    probabilities = warm.probabilities(warm.train_images)
    assert torch.allclose(probabilities.sum(1), torch.ones(len(y)), atol=1e-5)


def test_diagonal_laplace_matches_the_hand_computed_posterior_of_a_softmax_regression():
    """Posterior precision = diag GGN + prior, GGN_{c,d} = sum_n x_nd^2 p_nc (1 - p_nc) for the
    weights of a linear softmax layer; the prior is a marginal-likelihood maximum."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(64, generator=g) > 0).long()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))  # laplace wants >1 module
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[-1.0, 0.2, 0.0], [1.0, -0.2, 0.1]]))
        net[1].bias.zero_()
    la = bayesian.fit_diagonal_laplace(net, x, y, "last_layer", batch_size=16)
    p = torch.softmax(net(x), 1).detach()
    ggn_weight = ((p * (1 - p)).T @ (x ** 2))  # (classes, features)
    ggn_bias = (p * (1 - p)).sum(0)
    prior = float(la.prior_precision)
    expected = 1 / (torch.cat([ggn_weight.flatten(), ggn_bias]) + prior)
    assert torch.allclose(la.posterior_variance, expected, rtol=1e-4)
    best = float(la.log_marginal_likelihood(torch.tensor([prior])))
    for other in (prior / 3, prior * 3):
        assert float(la.log_marginal_likelihood(torch.tensor([other]))) < best


def test_laplace_method_predicts_from_the_posterior_and_keeps_the_map():
    x, y = tiny_images()
    model = small(epochs=4).fit(x, y, method=methods.create("laplace"))
    assert model.log["laplace_prior_precision"] > 0
    variants = model.predict_variants(x)
    assert set(variants) == {"map"}
    plain = small(epochs=4).fit(x, y)
    assert np.array_equal(variants["map"], plain.predict(x))  # the MAP is standard training
    posterior = model.probabilities(model.train_images)
    assert torch.allclose(posterior.sum(1), torch.ones(len(y)), atol=1e-5)
    # The predictive integrates over weight uncertainty: never more confident than the MAP.
    map_confidence = predict_logits(model.net, model.train_images).softmax(1).max(1).values
    assert (posterior.max(1).values <= map_confidence + 1e-5).all()
    with pytest.raises(ValueError, match="Laplace subset"):
        small(epochs=1).fit(x, y, method=methods.create("laplace", subset="kron"))


def test_sghmc_draws_its_noise_with_its_own_generator_on_the_run_s_device(monkeypatch):
    """On CUDA the noise generator is a CUDA generator (the noise is drawn on the device); it is
    not the generator that orders and augments the batches; on the CPU it is seeded as before."""

    class FakeGenerator:  # torch.Generator(device="cuda") needs a GPU: record what was asked
        def __init__(self, device="cpu"):
            self.device = torch.device(device)

        def manual_seed(self, seed):
            self.seed = seed
            return self

    w = torch.zeros(3, requires_grad=True)
    hp = {"momentum": 0.9, "weight_decay": 5e-4}
    labels = torch.zeros(8, dtype=torch.long)
    method = methods.create("sghmc")

    def state_on(device):
        return methods.TrainingState(net=None, labels=labels, num_classes=2, class_counts=None,
                                     hp=hp, seed=7, generator=torch.Generator().manual_seed(7),
                                     device=torch.device(device))

    cpu_state = state_on("cpu")
    cpu = method.optimizer(cpu_state, [w], 0.1).generator
    assert cpu is not cpu_state.generator and cpu.device == torch.device("cpu")
    assert torch.equal(cpu.get_state(), torch.Generator().manual_seed(7).get_state())
    monkeypatch.setattr(torch, "Generator", FakeGenerator)
    cuda = method.optimizer(state_on("cuda"), [w], 0.1).generator
    assert cuda.device == torch.device("cuda") and cuda.seed == 7


def test_the_laplace_fit_runs_without_tf32_and_restores_the_settings():
    """On CUDA, cuDNN would run the fit's convolutions as TF32; the fit switches it off, and
    torch's settings are back afterwards, also when the fit fails."""
    from tests.test_batches import STRICT, forward_precision, precision_now, tf32_allowed

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, generator=g), torch.arange(32) % 2
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
    with tf32_allowed():
        with forward_precision() as seen:
            bayesian.fit_diagonal_laplace(net, x, y, "last_layer", batch_size=16)
        assert seen and set(seen) == {STRICT}
        assert precision_now() == (False, True, True)
        with pytest.raises(RuntimeError):
            bayesian.fit_diagonal_laplace(net, x[:, :2], y, "last_layer")  # wrong input width
        assert precision_now() == (False, True, True)
