"""The toy 2D problem of Figure 9: a small MLP, a minority class, and its decision margins.

Data (:func:`harness.data.load_toy2d`, dataset ``toy2d``): the majority class (label 0) is a
standard Gaussian blob; the minority (label 1) a tight cluster at (1.5, 1.5), inside the
majority's tail, so that a classifier must draw its boundary close to minority points. Train and
test splits come from fixed seeds (the dataset is one fixed problem; run seeds vary the network).

Model (:class:`ToyMLP`, registered as ``mlp2d``): 2-64-64-2 ReLU MLP trained full batch by SGD
with momentum, or by SAM / asymmetric SAM (:mod:`harness.sam`) when the method asks for it.
After training it reports the *margin* of each minority training point: its distance to the
decision boundary, negative when the point is misclassified, measured on a dense grid.
"""

from __future__ import annotations

import numpy as np

GRID_LIMIT, GRID_POINTS = 4.0, 241  # margin grid: [-4, 4]^2 at 1/30 spacing

TOY_MLP = {
    "width": 64,               # hidden units per layer (two layers)
    "steps": 1500,             # full-batch optimizer steps
    "lr": 0.1,                 # SGD learning rate
    "momentum": 0.9,           # SGD momentum
    "sam_rho": 0.1,            # SAM ascent radius (L2, whole parameter vector)
    "minority_radius_scale": 3.0,  # asymmetric SAM: minority radius = sam_rho x this
}


def decision_grid() -> tuple[np.ndarray, np.ndarray]:
    axis = np.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_POINTS)
    xx, yy = np.meshgrid(axis, axis)
    return axis, np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def boundary_points(labels_on_grid: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Midpoints between horizontally or vertically adjacent grid cells with different labels."""
    grid = labels_on_grid.reshape(len(axis), len(axis))
    xx, yy = np.meshgrid(axis, axis)
    points = []
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        change = grid[a] != grid[b]
        points.append(np.stack([(xx[a] + xx[b])[change] / 2, (yy[a] + yy[b])[change] / 2], axis=1))
    return np.concatenate(points)


def margins(points: np.ndarray, correct: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest boundary point; negative if misclassified."""
    if len(boundary) == 0:
        return np.full(len(points), GRID_LIMIT * 2.0) * np.where(correct, 1, -1)
    dist = np.sqrt(((points[:, None, :] - boundary[None, :, :]) ** 2).sum(-1)).min(1)
    return np.where(correct, dist, -dist)


class ToyMLP:
    """d-64-64-2 MLP behind the model contract (d = feature count, 2 for the toy problem);
    regimes standard, sam, asymmetric_sam."""

    def __init__(self, seed: int = 0, n_jobs: int = 1, **params):
        self.seed, self.n_jobs, self.hp = seed, n_jobs, {**TOY_MLP, **params}

    def fit(self, x, y, sample_weight=None, regime="standard", epoch_size=None):
        import torch

        from . import sam

        if regime not in ("standard", "sam", "asymmetric_sam"):
            raise ValueError(f"ToyMLP has no {regime!r} training regime")
        torch.manual_seed(self.seed)
        torch.set_num_threads(self.n_jobs)
        width = self.hp["width"]
        self.net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, 2))
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        weights = torch.as_tensor(sample_weight, dtype=torch.float32) if sample_weight is not None else None
        params = list(self.net.parameters())
        opt = torch.optim.SGD(params, lr=self.hp["lr"], momentum=self.hp["momentum"])
        rho = self.hp["sam_rho"]
        scale = self.hp["minority_radius_scale"] if regime == "asymmetric_sam" else 1.0
        radii = sam.class_radii(yt, torch.tensor([rho, rho * scale]))

        def per_sample():
            losses = torch.nn.functional.cross_entropy(self.net(xt), yt, reduction="none")
            return losses * weights if weights is not None else losses

        for _ in range(self.hp["steps"]):
            if regime == "standard":
                opt.zero_grad(set_to_none=True)
                per_sample().mean().backward()
                opt.step()
            else:
                sam.sam_step(params, per_sample, radii, opt)
        self.x_train, self.y_train = x, y
        return self

    def predict(self, x) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(np.asarray(x, dtype=np.float32))).argmax(1).numpy().astype(np.int64)

    def extra_metrics(self) -> dict:
        """Minority-point margins on the training set and the decision grid (for the figure)."""
        axis, grid = decision_grid()
        labels = self.predict(grid)
        boundary = boundary_points(labels, axis)
        minority = self.y_train == 1
        points = self.x_train[minority]
        margin = margins(points, self.predict(points) == 1, boundary)
        coarse = labels.reshape(len(axis), len(axis))[::4, ::4]  # 61 x 61 for the report
        return {"minority_margin_mean": float(margin.mean()),
                "minority_margin_median": float(np.median(margin)),
                "decision_grid": {"axis": axis[::4].tolist(), "labels": coarse.tolist()}}
