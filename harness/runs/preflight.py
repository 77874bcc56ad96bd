"""The preflight: import every library the runs about to train need, before any of them trains.

Models and methods import their libraries lazily (a tabular session never loads torch), so a
broken install used to surface only when the first run needing the library trained: a
torchvision whose compiled ops were built for another torch, or laplace-torch without its asdl
backend, failed every Laplace run one by one after the others had trained. The owners declare
what they import: each model at registration (:func:`harness.learners.models.libraries`), each
method in its class (:attr:`harness.methods.Method.libraries`). The preflight imports those
modules in the workers that are warming up anyway (:func:`harness.runs.runner.warm_up`), or in
this process when the executor starts none, and an import that fails stops the session before
anything trains: :class:`LibraryError` names each module, its error, who needs it and the fix.

Failures are plain strings (:class:`ImportFailure`), so that they cross process boundaries
whatever the exception was.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from .. import methods
from ..learners import models

# What reinstalls this project's own libraries (pyproject.toml's dependencies, and the extras the
# tests use).
PROJECT_INSTALL = "pip install -e '.[dev]'"


@dataclass(frozen=True)
class ImportFailure:
    """A module that did not import: ``error`` is the exception's type and message, ``fix`` the
    command that repairs it (worked out where the import failed)."""

    module: str
    error: str
    fix: str

    def line(self, needed_by: Iterable[str] = ()) -> str:
        by = f" (needed by {', '.join(needed_by)})" if needed_by else ""
        return f"{self.module}{by}: {self.error}\n    fix: {self.fix}"


class LibraryError(RuntimeError):
    """Libraries the selected runs need do not import; nothing has trained. The message names
    each module, its error, who needs it and the fix."""

    def __init__(self, failures: list[ImportFailure], needed_by: dict[str, list[str]] | None = None):
        self.failures = list(failures)
        needed_by = needed_by or {}
        super().__init__(
            "the selected runs need libraries that do not import (nothing has trained):\n  "
            + "\n  ".join(f.line(needed_by.get(f.module, ())) for f in self.failures))


def needed(pairs: Iterable[tuple[str, Iterable[str]]]) -> dict[str, list[str]]:
    """The modules ``(model, method names)`` pairs need, in the order first declared (a model's
    before its methods': torch before what imports it), each with who declares it
    (``"model small_cnn"``, ``"method laplace"``). A post-hoc method also needs what its base
    method does (its runs train with the base's hooks)."""
    found: dict[str, list[str]] = {}

    def add(modules, who: str) -> None:
        for module in modules:
            users = found.setdefault(module, [])
            if who not in users:
                users.append(who)

    for model, method_names in pairs:
        add(models.libraries(model), f"model {model}")
        for name in method_names:
            cls = methods.METHODS.get(name)
            while cls is not None:
                add(cls.libraries, f"method {name}")
                cls = methods.METHODS.get(cls.trains_like) if cls.trains_like else None
    return found


def needed_by_specs(specs) -> dict[str, list[str]]:
    """:func:`needed` for run specs."""
    return needed((spec.model, (spec.method,)) for spec in specs)


def import_failures(modules: Iterable[str]) -> list[ImportFailure]:
    """Import each module (in order); the ones that fail, with their fix. A module inside a
    package that already failed is not tried again (it fails for the same reason)."""
    failures: list[ImportFailure] = []
    for module in modules:
        if any(module == f.module or module.startswith(f.module + ".") for f in failures):
            continue
        try:
            with warnings.catch_warnings():
                # Libraries warn on import about their own use of deprecated APIs (asdl's
                # torch.jit.script); the preflight asks only whether they import.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                importlib.import_module(module)
            if module.split(".")[0] == "torchvision":
                check_torchvision_ops()
        except Exception as err:  # noqa: BLE001 - a broken library raises anything (RuntimeError, OSError)
            failures.append(ImportFailure(module, f"{type(err).__name__}: {err}", fix_for(module, err)))
    return failures


def check(modules: Iterable[str], needed_by: dict[str, list[str]] | None = None) -> None:
    """Import ``modules`` here; raise :class:`LibraryError` naming those that fail."""
    failures = import_failures(modules)
    if failures:
        raise LibraryError(failures, needed_by)


def check_torchvision_ops() -> None:
    """torchvision imports even when its compiled ops (``torchvision::nms``, ...) fail to load (a
    torchvision built for another torch); they then fail wherever they are used, so the
    preflight asks for them. (Older torchvision versions fail at import instead.)"""
    import torchvision.extension

    if not getattr(torchvision.extension, "_has_ops", lambda: True)():
        raise RuntimeError("torchvision's compiled ops did not load (torchvision::nms and the "
                           "others): this torchvision was not built for the installed torch")


def fix_for(module: str, err: Exception) -> str:
    """The command that repairs a failed import of ``module``."""
    top = module.split(".")[0]
    if top == "torchvision" or "torchvision" in str(err):
        return torchvision_fix()
    if isinstance(err, ModuleNotFoundError):
        missing = err.name or module
        return (f"{missing} is not installed: {PROJECT_INSTALL} installs this project's "
                "libraries (a library of your own method or model: pip install the package "
                "that provides it)")
    dist = distribution_of(top)
    shadow = shadowing_file(top, dist)
    if shadow:
        return (f"{top} is imported from {shadow}, not from the installed "
                f"{dist or 'package'}: remove it from PYTHONPATH or the working directory")
    if dist is None:
        return f"reinstall the package that provides {top}, or {PROJECT_INSTALL}"
    version = metadata.version(dist)
    return (f"{dist} {version} is installed but does not import: pip install --force-reinstall "
            f"--no-deps {dist}=={version} (or {PROJECT_INSTALL})")


def shadowing_file(top_level: str, dist: str | None) -> str:
    """Where ``top_level`` is imported from when that is not the installed distribution
    ``dist`` (a same-named module earlier on ``sys.path``); "" when it is, or cannot be told."""
    import importlib.util
    from pathlib import Path

    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.origin or dist is None:
        return ""
    distribution = metadata.distribution(dist)
    # The files the distribution installed for this module (none for an editable install, whose
    # code lives elsewhere on purpose: then it cannot be told).
    own = [Path(str(distribution.locate_file(f))).resolve() for f in distribution.files or ()
           if f.parts and f.parts[0] in (top_level, f"{top_level}.py")]
    origin = Path(spec.origin).resolve()
    return str(origin) if own and origin not in own else ""


def distribution_of(top_level: str) -> str | None:
    """The installed distribution that provides the top-level module ``top_level``."""
    names = metadata.packages_distributions().get(top_level, [])
    return names[0] if names else None


def torchvision_fix() -> str:
    """Reinstalling the torchvision built for the installed torch (torch 2.N pairs with
    torchvision 0.(N + 15)), without touching torch."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return f"torch is not installed: {PROJECT_INSTALL}"
    release, _, local = torch_version.partition("+")
    major, minor = (release.split(".") + ["", ""])[:2]
    pin = f"torchvision==0.{int(minor) + 15}.*" if major == "2" and minor.isdigit() else "torchvision"
    index = (f" --index-url https://download.pytorch.org/whl/{local}"  # a CUDA build's own index
             if local else "")
    return (f"reinstall the torchvision built for torch {torch_version}: pip install "
            f"--force-reinstall --no-deps '{pin}'{index}")
