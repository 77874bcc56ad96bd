"""A session of the suite, without pytest: what it trains, where, and which arms it can judge.

The pytest plugin (``fixtures/plugin.py``) is hooks and fixtures over one :class:`Session`; the
plan command uses the same object. The session owns the policy: the seeds, the device each
profile's device-bound runs are keyed and trained on, which arms cannot train here (and are then
judged from the store or skipped), how methods under test join the methods arms, and the
submission of a whole selection before the first claim runs. It raises its own errors
(:class:`SessionError`, :class:`ArmSkipped`, :class:`ArmFailed`); the plugin turns them into a
usage error, a skip and a failure.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import methods
from ..data import DEFAULT_CACHE_DIR, DataError, sha256_of
from ..data import load as load_dataset
from ..judging import sequential
from ..judging.report import new_run_id
from ..learners import models
from ..runs import preflight
from ..runs.executors import make_executor
from ..runs.runner import Progress, RunFailed, Runner
from ..runs.spec import SpecError
from ..runs.store import DEFAULT_STORE_DIR, ReadOnlyStoreError, ResultStore
from ..runs.training import code_commit, library_versions
from . import plan, protocols

# The methods every method under test is compared with (claims/test_methods_under_test.py).
BASELINES = ("erm", "oversample")
# Seeds per arm when --seeds is not given: a fixed number where the profile is listed here (the
# quick smoke run keeps the paper's five), sequential seeds (AUTO) everywhere else.
DEFAULT_SEEDS = {"quick": 5}
# ... except the network (device-bound) arms of a profile listed here, which keep this many fixed
# seeds: medium's budget is one GPU-hour, known before it starts (--seeds=auto can take its
# network runs to 4x). Its tabular and toy arms are the full profile's grids, where five seeds
# leave several claims inconclusive; they are sequential, as in full, and cost CPU-minutes.
# The laptop profile's network arms too: its 90-minute budget is priced at five seeds.
NETWORK_DEFAULT_SEEDS = {"medium": 5, "laptop": 5}
AUTO = "auto"  # --seeds=auto: each claim's group-sequential design decides (harness.judging.sequential)
SIMCLR_WEIGHTS_SKIP = ("the ImageNet SimCLR baseline needs weights: pass --simclr-weights FILE "
                       "(a state dict for the arm's network, torchvision ResNet names)")


# The session's device line when no device-bound network was asked for: what did run (the
# tabular models, the toy MLP) always trains on the CPU, so no device was resolved.
NO_DEVICE_BOUND_RUNS = ("cpu (no device-bound network in this session: the tabular models and "
                        "the toy MLP always train on the CPU)")


def simclr_weights_skip(profile: str, arm: str) -> str:
    """Why a claim that needs ``--simclr-weights`` skips without them, naming the network the
    weights must be for in ``profile`` (nothing is downloaded: no published ImageNet SimCLR
    state dict is for the budgeted profiles' small networks, so there the user must bring one)."""
    grid = protocols.PROFILES.get(profile, {}).get(arm)
    if grid is None:
        return SIMCLR_WEIGHTS_SKIP
    return (f"the ImageNet SimCLR baseline needs weights: pass --simclr-weights FILE, a state dict "
            f"of ImageNet SimCLR pre-training for {profile}'s network {grid.model!r} (its "
            "parameter names, harness.nn.networks); nothing is downloaded")


class SessionError(ValueError):
    """A session option that cannot work (a method that does not resolve, ...): said before
    anything trains, with the fix."""


class ArmSkipped(Exception):
    """An arm this session cannot judge: its runs cannot train here and the store lacks some."""


class ArmFailed(Exception):
    """A fault that is not a result (missing data, an impossible spec, a crashed run, a
    read-only store lacking a run): the claim fails with this message, never "not supported"."""


@dataclass
class Options:
    """What a session is asked to do (the plugin fills it from the command line)."""

    seeds: int | str | None = None   # seeds per arm, "auto" (sequential), None: DEFAULT_SEEDS
    seed_offset: int = 0             # first seed
    data_dir: str | None = None
    store: str = str(DEFAULT_STORE_DIR)
    workers: int | str = "auto"      # training processes, or auto
    device: str = "auto"             # auto, cpu or cuda: where device-bound runs train
    executor: str = "local"
    runs_per_gpu: int = 1
    job_logs: str = str(DEFAULT_CACHE_DIR / "jobs")
    slurm: dict = field(default_factory=dict)  # make_executor's slurm options
    progress_log: str | None = None
    methods: tuple[str, ...] = ()    # --method references
    simclr_weights: str | None = None

    def build_executor(self):
        """The executor asked for, checked before anything is submitted."""
        return make_executor(self.executor, workers=self.workers, runs_per_gpu=self.runs_per_gpu,
                             folder=self.job_logs, **self.slurm)


def check_options(options: Options) -> None:
    """Refuse options that cannot work, before anything trains.

    Raises
    ------
    SessionError
        Fewer than 2 seeds (or a --seeds that is neither a number nor auto), a negative seed offset, a bad worker count, ``--device=cuda``
        where torch sees no GPU (except with Slurm, whose runs train on the cluster's GPUs), or
        a ``--simclr-weights`` file that does not exist.
    """
    seeds = options.seeds
    if seeds is not None and seeds != AUTO and not (isinstance(seeds, int) and seeds >= 2):
        raise SessionError(f"--seeds must be at least 2 (claims use paired tests "
                           f"over seeds), or auto (sequential seeds); got {seeds!r}")
    if options.seed_offset < 0:
        raise SessionError("--seed-offset must be 0 or more")
    workers = options.workers
    if workers != "auto" and not (str(workers).isdigit() and int(workers) >= 1):
        raise SessionError(f"--workers must be a whole number of at least 1, or auto; got {workers!r}")
    if options.device == "cuda" and options.executor != "slurm":
        import torch  # a missing GPU would otherwise surface claim by claim

        if not torch.cuda.is_available():
            raise SessionError("--device=cuda: torch sees no CUDA GPU on this machine (torch "
                               f"{torch.__version__}, CUDA build: {torch.version.cuda}); use "
                               "--device=auto or --device=cpu, or run on a GPU machine")
    weights = options.simclr_weights
    if weights is not None and not Path(weights).is_file():
        raise SessionError(f"--simclr-weights {weights}: no such file (give a torch state dict "
                           "saved with torch.save(model.state_dict(), path))")


def methods_under_test(refs) -> list[str]:
    """Registered names of the ``--method`` references (importing and registering a path or an
    entry point), deduplicated.

    Raises
    ------
    SessionError
        A reference that does not resolve (naming the known methods), or a baseline given as
        the method under test.
    """
    names = []
    for ref in refs:
        try:
            cls = methods.resolve(ref)
        except methods.MethodError as err:
            raise SessionError(f"--method={ref}: {err}") from None
        if cls.name in BASELINES:
            raise SessionError(f"--method={ref}: {cls.name} is the baseline every method under "
                               "test is compared with; give another method")
        names.append(cls.name)
    return list(dict.fromkeys(names))


def gpu_arm(profile: str, arm: str) -> bool:
    """Whether ``arm``'s claims need a GPU: a device-bound model in a GPU profile."""
    if profile not in protocols.GPU_PROFILES or arm not in protocols.arm_names(profile):
        return False
    return models.device_bound(protocols.arm_config(profile, arm).model)


class Session:
    """Options, the runner over the store, and the arms a selection asks for.

    Parameters
    ----------
    options : Options
    executor : optional
        Built from ``options`` when not given.
    write_line : callable, optional
        Shows a progress line (the plugin's terminal); progress also goes to
        ``options.progress_log``.
    """

    def __init__(self, options: Options, executor=None, write_line=None):
        self.options = options
        self.histories: dict[str, sequential.History] = {}  # claim node id -> its looks (auto)
        self.data_dir = options.data_dir
        self.store = ResultStore(options.store)
        self.methods_under_test = methods_under_test(options.methods)
        self.executor = executor or options.build_executor()
        self.figures = plan.load_calibration()  # an unreadable calibration file: said now
        self.runner = Runner(self.store, self.executor, self.data_dir, progress=self.show_progress,
                             estimate=lambda spec: plan.estimate_seconds(spec, self.figures)[0])
        self.write_line = write_line
        self.progress_log = options.progress_log or None
        self.data_errors: dict[str, str] = {}  # dataset -> the short message of its DataError
        self.claims: list[dict] = []
        self.started = time.time()
        self.session_id = new_run_id()  # names its claims in the store and its report

    # -- seeds --------------------------------------------------------------------------------
    def seed_list(self, n: int) -> list[int]:
        """The first ``n`` seeds of this session (from ``--seed-offset``)."""
        return list(range(self.options.seed_offset, self.options.seed_offset + n))

    def fixed_seeds(self, profile: str, arm: str | None = None) -> int | None:
        """Seeds per arm of ``profile``'s claims (on ``arm``, where given), or None when they
        are sequential (auto): ``--seeds``, else :data:`NETWORK_DEFAULT_SEEDS` for a network
        arm of a profile it lists, else :data:`DEFAULT_SEEDS`."""
        seeds = self.options.seeds
        if seeds is None and profile in NETWORK_DEFAULT_SEEDS and arm in protocols.arm_names(profile) \
                and models.device_bound(protocols.arm_config(profile, arm).model):
            seeds = NETWORK_DEFAULT_SEEDS[profile]
        if seeds is None:
            seeds = DEFAULT_SEEDS.get(profile, AUTO)
        return None if seeds == AUTO else int(seeds)

    def seeds_for(self, profile: str, arm: str | None = None) -> list[int]:
        """The seeds a claim of ``profile`` (on ``arm``) is judged on before any look: the
        fixed ones, or the first look's."""
        fixed = self.fixed_seeds(profile, arm)
        return self.seed_list(sequential.FIRST_LOOK if fixed is None else fixed)

    def design(self, profile: str, arm: str, alpha: float) -> sequential.Design | None:
        """The sequential design of a claim on ``arm`` at ``alpha`` (None with fixed seeds):
        looks doubling from :data:`~harness.judging.sequential.FIRST_LOOK` to the arm's
        declared maximum (:attr:`harness.experiments.protocols.Grid.max_seeds`)."""
        if self.fixed_seeds(profile, arm) is not None:
            return None
        maximum = protocols.arm_config(profile, arm).max_seeds
        return sequential.Design(sequential.doubling_looks(maximum), alpha)

    def history(self, claim: str, profile: str, arm: str, alpha: float) -> sequential.History | None:
        """The sequential history of ``claim`` (its node id) on ``arm`` at ``alpha``: the one
        its looks were made in (:mod:`harness.experiments.rounds`), or a new one; None with
        fixed seeds."""
        design = self.design(profile, arm, alpha)
        if design is None:
            return None
        return self.histories.setdefault(claim, sequential.History(design))

    # -- arms ---------------------------------------------------------------------------------
    def arm_config(self, profile: str, arm: str):
        """The arm's protocol config; a methods arm gets the methods under test that apply to
        its model added to its grid."""
        cfg = protocols.arm_config(profile, arm)
        if arm in protocols.METHOD_ARMS.get(profile, {}) and self.methods_under_test:
            fitting = [m for m in self.methods_under_test
                       if models.can_train(cfg.model, methods.get(m))]
            cfg = protocols.with_methods_under_test(cfg, fitting)
        return cfg

    @property
    def resolved_device(self) -> str:
        """What this machine has: ``cuda`` when torch sees a GPU, else ``cpu`` (asked of a
        worker, so only when needed)."""
        if not hasattr(self, "_resolved_device"):
            self._resolved_device = self.runner.device_here()
        return self._resolved_device

    def device_for(self, profile: str) -> str:
        """The device that device-bound runs of ``profile`` are keyed and trained on:
        ``--device`` when given; with auto, ``cuda`` for a GPU profile (its runs are GPU runs
        wherever they are planned, merged or judged; :data:`protocols.GPU_PROFILES`) and otherwise whatever this machine has."""
        if self.options.device != "auto":
            return self.options.device
        return "cuda" if profile in protocols.GPU_PROFILES else self.resolved_device

    def cannot_train(self, profile: str, cfg) -> str:
        """Why this session cannot train ``cfg``'s runs ("" when it can)."""
        if not models.device_bound(cfg.model):
            return ""
        device = self.device_for(profile)
        if profile in protocols.GPU_PROFILES and device == "cpu":
            epochs = dict(cfg.hyperparameters).get("epochs", models.DEFAULTS[cfg.model].get("epochs", "many"))
            return (f"the {profile} profile trains {cfg.model} for {epochs} epochs per run: it needs "
                    "a CUDA GPU (--device cpu was given). Run -m quick or -m laptop on the CPU")
        reaches_gpus = getattr(self.executor, "reaches_gpus", False)
        if device == "cuda" and not reaches_gpus and self.resolved_device != "cuda":
            return ("they are GPU runs and this machine has no CUDA GPU: train them with "
                    "--executor=gpus on a GPU machine or --executor=slurm, then merge the store "
                    "(docs/cluster.md)")
        return ""

    def arm_specs(self, profile: str, cfg, seeds=None) -> dict:
        """The specs of ``cfg``'s grid for this session (``seeds``: the profile's by default;
        data, device)."""
        placement = {}
        if models.device_bound(cfg.model):
            # The data first (cached once loaded): a cold CIFAR-10 decode takes ~12 s, in which
            # the workers started by prefetch answer the device question without a wait here.
            load_dataset(cfg.dataset, self.data_dir)
            placement["device"] = self.device_for(profile)
        seeds = self.seeds_for(profile) if seeds is None else seeds
        return protocols.grid_specs(cfg, seeds, self.data_dir, **placement)

    def grid(self, profile: str, arm: str, cfg=None, seeds=None):
        """The arm's config (``cfg``: one derived from it, e.g. with an extra baseline) and its
        records at ``seeds`` (the profile's by default), training only what the store lacks.

        Raises
        ------
        ArmSkipped
            Its runs cannot train here and the store lacks some of them.
        ArmFailed
            Missing data, an impossible spec, a run that failed, a read-only store lacking a run.
        """
        cfg = self.arm_config(profile, arm) if cfg is None else cfg
        if cfg.dataset in self.data_errors:
            raise ArmFailed(self.data_errors[cfg.dataset])
        try:
            specs = self.arm_specs(profile, cfg, self.seeds_for(profile, arm) if seeds is None else seeds)
            why = self.cannot_train(profile, cfg)
            if why:
                missing = [s for s in specs.values()
                           if s.key not in self.runner.memory and self.store.get(s) is None]
                if missing:
                    raise ArmSkipped(f"{arm}: {len(missing)} of {len(specs)} runs are not in the "
                                     f"store, and {why}")
            return cfg, protocols.run_grid(self.runner, specs)
        except DataError as err:
            self.data_errors[cfg.dataset] = f"{arm}: data unavailable: {err}"
            raise ArmFailed(self.data_errors[cfg.dataset]) from None
        except (SpecError, RunFailed, ReadOnlyStoreError, preflight.LibraryError) as err:
            raise ArmFailed(f"{arm}: {type(err).__name__}: {err}") from None

    def selection(self, arms, seeds: dict | None = None) -> tuple[list, dict]:
        """``(profile, arm)`` pairs as ``(profile, arm, specs)``, and ``"profile/arm"`` -> why an
        arm's specs could not be built (``seeds``: ``(profile, arm)`` -> its seeds, where not
        the profile's)."""
        built, errors = [], {}
        for profile, arm in arms:
            cfg = self.arm_config(profile, arm)
            try:
                arm_seeds = (seeds or {}).get((profile, arm)) or self.seeds_for(profile, arm)
                built.append((profile, arm, list(self.arm_specs(profile, cfg, arm_seeds).values())))
            except DataError as err:
                self.data_errors.setdefault(cfg.dataset, f"{arm}: data unavailable: {err}")
                errors[f"{profile}/{arm}"] = f"data unavailable: {err}"
            except SpecError as err:
                errors[f"{profile}/{arm}"] = f"SpecError: {err}"
        return built, errors

    def prefetch(self, arms, seeds: dict | None = None) -> None:
        """Hand every run of the ``(profile, arm)`` pairs to the executor at once, before the
        first claim (or a sequential look: ``seeds`` maps a pair to its seeds): the claims then
        read their records from memory. Runs this session cannot
        train are left to their claims (judged from the store or skipped); failures are kept by
        the runner and reported by each claim that needs the run.

        Raises
        ------
        harness.runs.preflight.LibraryError
            A library the runs need does not import (before anything trains).
        """
        configs = {(profile, arm): self.arm_config(profile, arm) for profile, arm in arms}
        try:
            if any(models.device_bound(cfg.model) for cfg in configs.values()):
                # Workers import torch, and every library the selected arms' models and methods
                # declare (the preflight), while this process builds the specs (and, cold,
                # decodes CIFAR-10); one of them also tells this process which device
                # --device=auto means.
                self.runner.start_workers(preflight.needed(
                    (cfg.model, cfg.methods) for cfg in configs.values()))
            built, _ = self.selection(arms, seeds)
            specs, labels = [], {}
            for profile, arm, arm_specs in built:
                if self.cannot_train(profile, configs[(profile, arm)]):
                    continue
                for spec in arm_specs:
                    labels.setdefault(spec.key, arm)
                    specs.append(spec)
            if specs:
                self.runner.run(specs, labels)
        except (RunFailed, ReadOnlyStoreError):
            pass  # each claim that needs a failed or missing run fails with its own message

    def simclr_weights(self) -> dict:
        """Settings naming the ``--simclr-weights`` file.

        Raises
        ------
        ArmSkipped
            No weights were given.
        """
        path = self.options.simclr_weights
        if path is None:
            raise ArmSkipped(SIMCLR_WEIGHTS_SKIP)
        return {"pretrained_weights": str(Path(path).resolve()), "pretrained_sha256": sha256_of(Path(path))}

    # -- progress and provenance --------------------------------------------------------------
    def show_progress(self, progress: Progress) -> None:
        """A progress line on ``write_line`` and, with a timestamp, in the progress log."""
        self.show_line(progress.line())

    def show_line(self, line: str) -> None:
        """``line`` on ``write_line`` and, with a timestamp, in the progress log."""
        if self.progress_log:
            try:
                Path(self.progress_log).parent.mkdir(parents=True, exist_ok=True)
                with open(self.progress_log, "a") as log:
                    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            except OSError:
                self.progress_log = None  # an unwritable log never stops the suite
        if self.write_line is not None:
            self.write_line(f"    [harness] {line}")

    def meta(self, versions: dict | None = None) -> dict:
        """The session's provenance for the store and the report; ``versions`` adds to the
        libraries' (the plugin adds pytest's)."""
        return {
            "profiles": sorted({c["profile"] for c in self.claims}),
            "device": (f"--device {self.options.device}; this machine: {self._resolved_device}"
                       if hasattr(self, "_resolved_device") else NO_DEVICE_BOUND_RUNS),
            "git_commit": code_commit(),
            "command": " ".join(sys.argv),
            "seeds": self.seeds_description(),
            "workers": self.executor.workers,
            "executor": self.options.executor,
            "wall_time_s": round(time.time() - self.started, 1),
            "runs_trained": self.runner.trained,
            "runs_loaded": self.runner.loaded,
            "seed_offset": self.options.seed_offset,
            "store": str(self.store.root) + (" (read-only)" if self.store.read_only else ""),
            "session_id": self.session_id,
            "zoo_left_out": protocols.ZOO_LEFT_OUT,  # profile -> arm -> method -> why
            "versions": {**library_versions(), **(versions or {})},
        }

    def seeds_description(self) -> str | list[int]:
        """The seeds of the session's profiles for its provenance: a list when fixed for all."""
        profiles = sorted({c["profile"] for c in self.claims}) or sorted(DEFAULT_SEEDS)
        fixed = {p: self.fixed_seeds(p) for p in profiles}
        networks = {p: NETWORK_DEFAULT_SEEDS[p] for p in profiles
                    if self.options.seeds is None and p in NETWORK_DEFAULT_SEEDS}
        if not networks and all(n is not None for n in fixed.values()) and len(set(fixed.values())) == 1:
            return self.seed_list(next(iter(fixed.values())))
        return "; ".join(f"{p}: " + (f"{n} fixed" if n is not None else
                                      "auto (group-sequential, looks doubling from "
                                      f"{sequential.FIRST_LOOK})")
                         + (f", network arms {networks[p]} fixed" if p in networks else "")
                         for p, n in fixed.items())

    def close(self) -> None:
        self.runner.executor.close()
