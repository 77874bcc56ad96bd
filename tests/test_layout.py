"""The harness's layout: sub-packages read top-down, each importing only the ones before it
(function-level imports included), and none importing pytest."""

import ast
from pathlib import Path

import harness

ORDER = ("data", "nn", "methods", "learners", "runs", "judging", "experiments")
ROOT = Path(harness.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Dotted harness modules (or external top-level names) ``path`` imports, anywhere in it."""
    package = ".".join(("harness",) + path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "harness" or len(parts) < 2 or parts[1] not in ORDER:
        return None
    return ORDER.index(parts[1])


def test_each_sub_package_imports_only_earlier_ones():
    wrong = []
    for path in ROOT.rglob("*.py"):
        own = path.relative_to(ROOT).parts[0]
        if own not in ORDER:  # __init__.py, __main__.py: the top, may import anything
            continue
        for module in imported_modules(path):
            other = layer(module)
            if other is not None and other > ORDER.index(own):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_harness_never_imports_pytest():
    users = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
             if any(m.split(".")[0] == "pytest" for m in imported_modules(p))]
    assert not users
