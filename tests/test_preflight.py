"""The preflight: the libraries models and methods declare, imported before anything trains; a
failure names the module, its error, who needs it and the fix."""

import sys

import pytest

from harness import methods
from harness.runs import preflight


class NeedsAMissingLibrary(methods.Method):
    name = "needs_a_missing_library"
    libraries = ("json", "no_such_module_anywhere.sub")


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(methods.METHODS, NeedsAMissingLibrary.name, NeedsAMissingLibrary)


def test_the_modules_a_selection_needs_come_from_its_models_and_methods():
    """A model's modules first (torch before what imports it), then each method's, and a
    post-hoc method's base's; each with who declares it."""
    needed = preflight.needed([("small_cnn", ["erm", "laplace"]), ("xgboost", ["smote"])])
    assert list(needed)[:5] == ["torch", "scipy.sparse.linalg", "torchvision", "laplace",
                                "laplace.curvature.asdl"]
    assert needed["laplace"] == ["method laplace"] and needed["torch"] == ["model small_cnn"]
    assert needed["xgboost"] == ["model xgboost"] and "imblearn.over_sampling" in needed


def test_a_method_declaring_a_library_that_does_not_exist_fails_with_the_fix(registered):
    needed = preflight.needed([("xgboost", [NeedsAMissingLibrary.name])])
    failures = preflight.import_failures(needed)
    assert [f.module for f in failures] == ["no_such_module_anywhere.sub"]
    assert failures[0].error == "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    assert "pip install -e '.[dev]'" in failures[0].fix
    message = str(preflight.LibraryError(failures, needed))
    assert "nothing has trained" in message
    assert "no_such_module_anywhere.sub (needed by method needs_a_missing_library): " \
           "ModuleNotFoundError" in message


def test_a_library_that_raises_on_import_is_named_once_with_a_reinstall(tmp_path, monkeypatch):
    """A package that is there but broken (its import raises something other than a missing
    module); a submodule of it is not tried again."""
    package = tmp_path / "broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('undefined symbol: _ZN3c10')\n")
    (package / "sub.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    failures = preflight.import_failures(["broken_pkg", "broken_pkg.sub", "json"])
    assert [(f.module, f.error) for f in failures] == [("broken_pkg", "RuntimeError: undefined symbol: _ZN3c10")]
    assert "reinstall" in failures[0].fix
    sys.modules.pop("broken_pkg", None)


def test_torchvision_whose_compiled_ops_did_not_load_fails_with_the_matching_version(monkeypatch):
    """torchvision imports even when its ops were built for another torch; the preflight asks
    for them, and the fix is the torchvision built for the installed torch."""
    from importlib import metadata

    import torchvision.extension

    monkeypatch.setattr(torchvision.extension, "_has_ops", lambda: False)
    failures = preflight.import_failures(["torch", "torchvision"])
    assert [f.module for f in failures] == ["torchvision"]
    assert "compiled ops did not load" in failures[0].error
    minor = int(metadata.version("torch").split(".")[1])
    assert f"pip install --force-reinstall --no-deps 'torchvision==0.{minor + 15}.*'" in failures[0].fix


def test_check_raises_and_passes():
    preflight.check(["json", "torch"])
    with pytest.raises(preflight.LibraryError, match="no_such_module_anywhere"):
        preflight.check(["no_such_module_anywhere"])


def test_a_module_shadowing_its_installed_package_gets_the_right_fix(tmp_path, monkeypatch):
    """The auditor's case: a broken ``laplace`` earlier on the path than laplace-torch must not
    be answered with "reinstall laplace-torch"."""
    import sys

    (tmp_path / "laplace").mkdir()
    (tmp_path / "laplace" / "__init__.py").write_text('raise RuntimeError("a broken copy")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "laplace" or m.startswith("laplace.")]:
        monkeypatch.delitem(sys.modules, name)
    failures = preflight.import_failures(["laplace"])
    assert len(failures) == 1 and "a broken copy" in failures[0].error
    assert f"imported from {tmp_path / 'laplace' / '__init__.py'}" in failures[0].fix
    assert "remove it from PYTHONPATH" in failures[0].fix


def test_an_installed_package_that_does_not_import_is_reinstalled_at_its_version():
    from importlib import metadata

    fix = preflight.fix_for("xgboost", RuntimeError("a broken build"))
    version = metadata.version("xgboost-cpu")
    assert f"pip install --force-reinstall --no-deps xgboost-cpu=={version}" in fix
