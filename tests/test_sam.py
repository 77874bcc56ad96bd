"""SAM and asymmetric SAM on a tiny model: reductions, sign and scale of the ascent step."""

import numpy as np
import pytest
import torch

from harness.nn import sam


def tiny_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 3, generator=g)
    y = (torch.arange(16) % 4 == 0).long()  # 4 minority samples
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=g))
        model.bias.zero_()
    return model, x, y


def per_sample(model, x, y):
    return lambda: torch.nn.functional.cross_entropy(model(x), y, reduction="none")


def manual_sam_step(model, x, y, rho, lr):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.add_(rho * g / norm)
    loss2 = torch.nn.functional.cross_entropy(model(x), y)
    grads2 = torch.autograd.grad(loss2, list(model.parameters()))
    with torch.no_grad():
        for p, g, g2 in zip(model.parameters(), grads, grads2):
            p.sub_(rho * g / norm)
            p.sub_(lr * g2)


def test_equal_radii_reduce_to_sam():
    model, x, y = tiny_problem()
    reference, _, _ = tiny_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sam.sam_step(list(model.parameters()), per_sample(model, x, y), torch.full((16,), 0.5), opt)
    manual_sam_step(reference, x, y, rho=0.5, lr=0.1)
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_zero_radius_reduces_to_the_base_optimizer():
    model, x, y = tiny_problem()
    reference, _, _ = tiny_problem()
    sam.sam_step(list(model.parameters()), per_sample(model, x, y), torch.zeros(16),
                 torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    base = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    torch.nn.functional.cross_entropy(reference(x), y).backward()
    base.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_minority_radius_lengthens_the_step_along_the_minority_gradient():
    model, x, y = tiny_problem()
    params = list(model.parameters())
    losses = per_sample(model, x, y)()
    symmetric = sam.ascent_vector(params, losses, torch.full((16,), 0.1))
    radii = sam.class_radii(y, torch.tensor([0.1, 0.5]))
    asymmetric = sam.ascent_vector(params, losses, radii)
    minority_grad = torch.autograd.grad(losses[y == 1].sum(), params, retain_graph=True)
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    delta = flat(asymmetric) - flat(symmetric)
    # the extra perturbation is exactly 0.4 x the (normalized) minority gradient: positive along it
    assert torch.dot(delta, flat(minority_grad)) > 0
    grads = torch.autograd.grad(losses.mean(), params, retain_graph=True)
    expected = 0.4 * flat(minority_grad) / 16 / flat(grads).norm()
    assert torch.allclose(delta, expected, atol=1e-6)
    assert flat(asymmetric).norm() > flat(symmetric).norm()


def test_radii_are_validated_where_they_are_made():
    """Radii are fixed for a run: a negative (or NaN) one is refused when the radii are made, not
    at every step (a check of a CUDA tensor's values synchronizes the device)."""
    model, x, y = tiny_problem()
    losses = per_sample(model, x, y)()
    with pytest.raises(ValueError, match="one radius per sample"):
        sam.ascent_vector(list(model.parameters()), losses, torch.ones(3))
    for rho, scale in ((-0.05, 2.0), (0.05, -2.0), (float("nan"), 2.0)):
        with pytest.raises(ValueError, match="non-negative"):
            sam.minority_half_radii(y, 2, rho, scale)
    for table in (torch.tensor([0.1, -0.5]), torch.tensor([0.1, float("nan")])):
        with pytest.raises(ValueError, match="non-negative"):
            sam.class_radii(y, table)
    assert torch.equal(sam.minority_half_radii(y, 2, 0.1, 2.0), sam.class_radii(y, torch.tensor([0.1, 0.2])))


def test_a_step_reads_back_only_whether_the_radii_are_equal(monkeypatch):
    """At most one value leaves the device per step (is the batch plain SAM?), none when the
    caller says; the answer given and the answer checked take the same step."""
    reads = []
    to_bool, item = torch.Tensor.__bool__, torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda t: reads.append("bool") or to_bool(t))
    monkeypatch.setattr(torch.Tensor, "item", lambda t: reads.append("item") or item(t))
    steps = {}
    for uniform, radii in ((None, sam.minority_half_radii), (None, None), (True, None)):
        model, x, y = tiny_problem()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        table = radii(y, 2, 0.1, 2.0) if radii else torch.full((16,), 0.1)
        for _ in range(3):
            reads.clear()
            told = {} if uniform is None else {"uniform": uniform}
            sam.sam_step(list(model.parameters()), per_sample(model, x, y), table, opt, **told)
            assert len(reads) == (0 if uniform else 1), reads
        steps[uniform, radii] = [p.detach() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(steps[None, None], steps[True, None]))


def test_toy_margins_are_exact_distances_to_the_boundary():
    """Root-finding along rays recovers known distances: a straight boundary and a circle."""
    from harness.learners import toy

    points = np.array([[0.0, 0.0], [0.5, 3.0], [2.5, -1.0]], dtype=np.float32)
    straight = toy.boundary_distances(lambda x: x[:, 0] - 1.0, points)
    assert straight == pytest.approx([1.0, 0.5, 1.5], abs=1e-5)
    circle = toy.boundary_distances(lambda x: 4.0 - (x ** 2).sum(1), np.array([[0.5, 0.0], [0.0, -3.0]],
                                                                                dtype=np.float32))
    assert circle == pytest.approx([1.5, 1.0], abs=1e-4)
    far = toy.boundary_distances(lambda x: x[:, 0] - 100.0, np.zeros((1, 2), dtype=np.float32))
    assert far[0] == toy.RAY_REACH  # no boundary within reach


def full_march_distances(logit_gap, points: np.ndarray) -> np.ndarray:
    """Reference for ``boundary_distances``: every ray marched to the reach, every crossing ray
    bisected, the nearest kept (the computation before the march stopped at a point's first
    crossing)."""
    from harness.learners import toy

    with torch.no_grad():
        origin = torch.as_tensor(points)
        angles = torch.arange(toy.RAYS, dtype=torch.float32) * (2 * np.pi / toy.RAYS)
        directions = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
        radii = torch.arange(1, int(toy.RAY_REACH / toy.RAY_STEP) + 1, dtype=torch.float32) * toy.RAY_STEP
        side = logit_gap(origin) > 0
        along = origin[:, None, None, :] + radii[None, None, :, None] * directions[None, :, None, :]
        flipped = (logit_gap(along.reshape(-1, 2)).reshape(along.shape[:3]) > 0) != side[:, None, None]
        first = flipped.float().argmax(2)
        hi = radii[first]
        lo = torch.where(first > 0, radii[(first - 1).clamp(min=0)], torch.zeros_like(hi))
        for _ in range(toy.BISECTIONS):
            mid = (lo + hi) / 2
            probe = origin[:, None, :] + mid[..., None] * directions[None]
            moved = (logit_gap(probe.reshape(-1, 2)).reshape(mid.shape) > 0) != side[:, None]
            hi, lo = torch.where(moved, mid, hi), torch.where(moved, lo, mid)
        return torch.where(flipped.any(2), hi, torch.full_like(hi, toy.RAY_REACH)).min(1).values.double().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toy_margins_stop_marching_at_the_first_crossing_without_changing_them(seed):
    """The march stops at a point's first crossing and bisects only the rays crossing there;
    the distances equal those of marching and bisecting every ray (to float32 rounding: a probe
    batch of 1-3 rows takes another GEMM kernel), for points near, far from and on the wrong
    side of a random MLP's boundary."""
    from harness.learners import toy

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def gap(x):
        logits = net(x)
        return logits[:, 1] - logits[:, 0]

    points = (np.random.default_rng(seed).normal(size=(12, 2)) * 2).astype(np.float32)
    expected = full_march_distances(gap, points)
    assert toy.boundary_distances(gap, points) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name, uniform", [("sam", True), ("asymmetric_sam", None)])
def test_plain_sam_tells_its_steps_the_radii_are_uniform(name, uniform, monkeypatch):
    """Issue 21: plain SAM's radii are one value, known when they are made; its steps say so and
    read nothing back from the device. Asymmetric SAM leaves it to each batch."""
    from harness import methods
    from tests.test_engine import small, tiny_images

    told = []
    step = sam.sam_step
    monkeypatch.setattr(sam, "sam_step", lambda *a, **k: told.append(k.get("uniform")) or step(*a, **k))
    x, y = tiny_images()
    small(epochs=1).fit(x, y, method=methods.get(name)())
    assert told and set(told) == {uniform}
