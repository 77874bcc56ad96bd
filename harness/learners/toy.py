"""The toy 2D problem of Figure 9: a small MLP, a minority class, and its decision margins.

Data (:func:`harness.data.load_toy2d`, dataset ``toy2d``): the majority class (label 0) is a
standard Gaussian blob; the minority (label 1) a tight cluster at (1.5, 1.5), inside the
majority's tail, so that a classifier must draw its boundary close to minority points. Train and
test splits come from fixed seeds (the dataset is one fixed problem; run seeds vary the network).

Model (:class:`ToyMLP`, registered as ``mlp2d``): 2-64-64-2 ReLU MLP trained full batch by SGD
with momentum, or by SAM / asymmetric SAM (:mod:`harness.nn.sam`) when the method asks for it
(the same step the CIFAR networks take).
After training it reports the *margin* of each minority training point: its Euclidean distance
to the decision boundary, negative when the point is misclassified. The distance is found by
root-finding (:func:`boundary_distances`): from each point, 360 rays (1 degree apart) are marched
in steps of 0.05 until the predicted class changes, the crossing is bisected to 1e-6, and the
nearest crossing over the rays is the distance (for a locally straight boundary the angular
spacing overstates it by at most a factor 1 / cos(0.5 degree), 4e-5). A dense grid is kept only
to draw the boundary in the report.
"""

from __future__ import annotations

import numpy as np

GRID_LIMIT, GRID_POINTS = 4.0, 241  # figure grid: [-4, 4]^2 at 1/30 spacing
RAYS = 360            # directions searched from each point (1 degree apart)
RAY_STEP = 0.05       # marching step along a ray, in input units
RAY_REACH = 8.0       # farthest distance searched; a point with no crossing gets this margin
BISECTIONS = 22       # halvings of a bracketing step: 0.05 / 2**22 ~ 1e-8
MARCH_CHUNK = 8       # marching steps evaluated at once (the march stops at a point's first crossing)

TOY_MLP = {
    "width": 64,               # hidden units per layer (two layers)
    "steps": 1500,             # full-batch optimizer steps
    "lr": 0.1,                 # SGD learning rate
    "momentum": 0.9,           # SGD momentum
}  # SAM's radii for this model are the methods' (harness.methods.standard: model_settings)


def decision_grid() -> tuple[np.ndarray, np.ndarray]:
    axis = np.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_POINTS)
    xx, yy = np.meshgrid(axis, axis)
    return axis, np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def boundary_distances(logit_gap, points: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest zero of ``logit_gap`` (the decision boundary).

    ``logit_gap(x)`` maps an ``(n, 2)`` float32 tensor to ``(n,)`` (class-1 minus class-0 logit).
    Rays from each point are marched until the sign of the gap differs from its sign at the
    point; the bracketing step is bisected and the nearest crossing over all rays returned.
    Points with no crossing within ``RAY_REACH`` get ``RAY_REACH``.

    The march stops, per point, at the first step where any of its rays has crossed: a ray that
    crosses only at a later step ``k`` ends its bisection beyond step ``k - 1``'s radius, so it
    can never be the nearest crossing. Only the rays crossing at that first step are bisected.
    Marching every ray to ``RAY_REACH`` cost ~7x more (1.3-2.5 s vs 0.2-1.0 s for 20 points) for
    the same distances up to float32 rounding (a bisection batch of 1-3 rows takes another GEMM
    kernel); the 15 stored toy runs' margins came out bit-identical.
    """
    import torch

    with torch.no_grad():
        origin = torch.as_tensor(np.asarray(points, dtype=np.float32))            # (P, 2)
        angles = torch.arange(RAYS, dtype=torch.float32) * (2 * np.pi / RAYS)
        directions = torch.stack([torch.cos(angles), torch.sin(angles)], 1)       # (R, 2)
        radii = torch.arange(1, int(RAY_REACH / RAY_STEP) + 1, dtype=torch.float32) * RAY_STEP
        side = logit_gap(origin) > 0                                              # (P,)
        distance = torch.full((len(origin),), float(RAY_REACH))
        waiting = torch.arange(len(origin))            # points whose rays have not crossed yet
        for start in range(0, len(radii), MARCH_CHUNK):
            if len(waiting) == 0:
                break
            steps = radii[start:start + MARCH_CHUNK]                                # (S,)
            along = origin[waiting, None, None, :] + steps[None, None, :, None] * directions[None, :, None, :]
            flipped = (logit_gap(along.reshape(-1, 2)).reshape(along.shape[:3]) > 0) != side[waiting, None, None]
            crossed_at = flipped.any(1)                        # (W, S) some ray crossed at this step
            hit = crossed_at.any(1)                                               # (W,) crossed here
            if not hit.any():
                continue
            # The earliest step at which any ray of the point crossed, and the rays crossing there.
            first = crossed_at.float().argmax(1)                                  # (W,) within the chunk
            points_hit, first = waiting[hit], first[hit]
            which, ray = torch.nonzero(flipped[hit].gather(
                2, first[:, None, None].expand(-1, RAYS, 1)).squeeze(2), as_tuple=True)
            step = start + first[which]
            hi = radii[step]
            lo = torch.where(step > 0, radii[(step - 1).clamp(min=0)], torch.zeros_like(hi))
            owner = points_hit[which]                                             # a point per ray
            p, d, own_side = origin[owner], directions[ray], side[owner]
            for _ in range(BISECTIONS):
                mid = (lo + hi) / 2
                moved = (logit_gap(p + mid[:, None] * d) > 0) != own_side
                hi, lo = torch.where(moved, mid, hi), torch.where(moved, lo, mid)
            distance[points_hit] = torch.full((len(points_hit),), float("inf")).scatter_reduce(
                0, which, hi, reduce="amin")
            waiting = waiting[~hit]
        return distance.double().numpy()


class ToyMLP:
    """d-64-64-2 MLP behind the model contract (d = feature count, 2 for the toy problem),
    trained full batch with a constant learning rate; a method may replace its loss and its
    step (SAM and asymmetric SAM use the same step as the CIFAR networks)."""

    CAPABILITIES = frozenset({"rows", "features", "loss", "step"})
    # What extra_metrics records for every run (Figure 9's claims read them; the dry run checks)
    EXTRA_METRICS = ("minority_margin_mean", "decision_grid")

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.seed, self.n_jobs, self.hp = seed, n_jobs, {**TOY_MLP, **params}

    def fit(self, x, y, sample_weight=None, method=None, epoch_size=None):
        import torch

        from ..methods.base import TrainingState
        from ..methods.standard import ERM
        from ..nn.networks import parameters_digest

        method = method or ERM()
        torch.manual_seed(self.seed)
        torch.set_num_threads(self.n_jobs)
        width = self.hp["width"]
        self.net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, 2))
        self.init_digest = parameters_digest(self.net)  # the run record's fingerprint of the seed
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        weights = torch.as_tensor(sample_weight, dtype=torch.float32) if sample_weight is not None else None
        params = list(self.net.parameters())
        state = TrainingState(net=self.net, labels=yt, num_classes=2,
                              class_counts=torch.bincount(yt, minlength=2), hp=self.hp,
                              seed=self.seed, weights=weights, params=params,
                              epochs=self.hp["steps"], lr=self.hp["lr"])
        method.prepare(state)
        opt = torch.optim.SGD(params, lr=self.hp["lr"], momentum=self.hp["momentum"])

        def per_sample():
            losses = method.loss(self.net(xt), yt, state)
            return losses * weights if weights is not None else losses

        for _ in range(self.hp["steps"]):
            method.step(state, per_sample, None, opt)
        self.x_train, self.y_train = x, y
        return self

    def predict(self, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(np.asarray(x, dtype=np.float32))).argmax(1).numpy().astype(np.int64)

    def logit_gap(self, x):
        """Class-1 minus class-0 logit: positive where the minority class is predicted."""
        logits = self.net(x)
        return logits[:, 1] - logits[:, 0]

    def extra_metrics(self) -> dict:
        """Minority-point margins (by root-finding) and the decision grid (for the figure)."""
        axis, grid = decision_grid()
        labels = self.predict(grid)
        minority = self.y_train == 1
        points = self.x_train[minority]
        correct = self.predict(points) == 1
        margin = np.where(correct, 1, -1) * boundary_distances(self.logit_gap, points)
        coarse = labels.reshape(len(axis), len(axis))[::4, ::4]  # 61 x 61 for the report
        return {"minority_margin_mean": float(margin.mean()),
                "minority_margin_median": float(np.median(margin)),
                "decision_grid": {"axis": axis[::4].tolist(), "labels": coarse.tolist()}}
