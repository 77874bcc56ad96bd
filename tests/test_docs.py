"""The README and the reference under docs/ say what the code does: the README stays a front
door (at most 250 lines), its verdict table is the ``verdicts`` command's output, every local
link resolves, every pytest option is documented, and every shell command in a ``bash`` block
is exercised as far as it is cheap.

How a command is exercised (:func:`exercise`):

* ``pytest ...``: collected (``--collect-only``), so its options parse and its selection holds
  at least one item;
* ``python -m harness plan ...`` and ``verdicts ...``: run as written (plan trains nothing);
* any other ``python -m harness CMD ...``: parsed by the harness's own parser (options, values,
  choices, positionals) but not run (it trains, needs a GPU or a store another session made);
* a GPU command on a machine without a GPU: its usage error naming the missing GPU (exit 4),
  then its selection collected on the local executor;
* install and shell steps (``pip``, ``python -m venv``, ``cp``, ...): not run here; ``.ci/run``
  installs as the README says.

Path options (``--store``, ``--report-dir``, ...) are pointed into a temporary directory, so a
documented ``--store=/shared/store`` never creates one.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from harness.data import REPO_ROOT
from harness.experiments.protocols import PROFILES
from harness.judging.compare import load_claims
from harness.judging.overview import verdict_table

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 250
PATH_OPTIONS = ("--store", "--report-dir", "--job-logs", "--progress-log")
# Options whose documented value is a placeholder for the user's own file: a real one stands in.
EXAMPLE_FILES = {"--baseline": REPO_ROOT / "docs" / "verdicts" / "quick.claims.json"}
SHELL_STEPS = ("git", "pip", "python -m venv", ".", "cd", "cp", "for", "done", "wait", "source")


def bash_commands(page) -> list[str]:
    """The commands of a page's ``bash`` blocks: continuation lines joined, comments dropped,
    ``a && b``, ``a; b`` and ``a & b`` split, a loop's ``do`` dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            part: list[str] = []
            for word in words + [";"]:
                if word in ("&&", ";", "&") or word.endswith(";"):
                    if word.endswith(";") and word != ";":
                        part.append(word[:-1])
                    if part:
                        commands.append(shlex.join(part[1:] if part[0] == "do" else part))
                    part = []
                else:
                    part.append(word)
    return commands


def documented_commands() -> list[tuple[str, str]]:
    return [(page.name, command) for page in PAGES for command in bash_commands(page)]


def is_shell_step(command: str) -> bool:
    return any(command == step or command.startswith(step + " ") for step in SHELL_STEPS)


def redirected(args: list[str], tmp_path) -> list[str]:
    """``args`` with every path option pointed into ``tmp_path`` and each placeholder file
    (:data:`EXAMPLE_FILES`) replaced by a real one."""
    out = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in PATH_OPTIONS:
            arg = f"{name}={tmp_path / name.strip('-')}"
        elif name in EXAMPLE_FILES:
            arg = f"{name}={EXAMPLE_FILES[name]}"
        out.append(arg)
    return out


def exercise(command: str, tmp_path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    env = dict(os.environ)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = str(tmp_path) if key == "PYTHONPATH" else value  # the README's my_methods.py
    if env.get("PYTHONPATH") == str(tmp_path):
        (tmp_path / "my_methods.py").write_text(readme_method())
    if words[0] == "pytest":
        args = [sys.executable, "-m", "pytest", *redirected(words[1:], tmp_path), "--collect-only",
                "-q", "-p", "no:cacheprovider"]
        if not any(a.startswith("--store") for a in words):
            args.append(f"--store={tmp_path / 'store'}")
    elif words[:3] == ["python", "-m", "harness"]:
        rest = words[3:]
        if not rest or rest[0] in ("--help", "-h"):
            args = [sys.executable, "-m", "harness", "--help"]
        elif rest[0] in ("plan", "verdicts"):
            args = [sys.executable, "-m", "harness", *redirected(rest, tmp_path)]
            if rest[0] == "plan" and not any(a.startswith("--store") for a in rest):
                args.append(f"--store={tmp_path / 'store'}")
        else:  # parsed as main() parses it (values, choices, positionals), not run
            code = ("import sys; from harness.__main__ import build_parser; "
                    "build_parser().parse_args(sys.argv[1:])")
            args = [sys.executable, "-c", code, *rest]
    else:
        raise AssertionError(f"{command!r}: not a pytest, python -m harness or shell step; "
                             "teach tests/test_docs.py how to exercise it")
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def readme_method() -> str:
    after = README.read_text().split("This is `my_methods.py`", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


COMMANDS = list({c: (page, c) for page, c in reversed(documented_commands())
                 if not is_shell_step(c)}.values())[::-1]  # each command once, where it first appears


def test_the_readme_is_a_front_door():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference to docs/"


def test_the_pages_document_commands():
    """The extraction finds the README's main commands (a parser that found none passes all)."""
    commands = [c for _, c in documented_commands()]
    assert "pytest claims/ -m quick" in commands and "pytest" in commands
    assert any(c.startswith("python -m harness plan") for c in commands)


@pytest.mark.parametrize("page, command", COMMANDS, ids=[f"{p}: {c}"[:90] for p, c in COMMANDS])
def test_a_documented_command_works(page, command, tmp_path):
    done = exercise(command, tmp_path)
    if done.returncode == 4 and "no GPU is visible" in done.stdout + done.stderr and not gpu_here():
        # A GPU command on a machine without one refuses clearly; its selection (markers,
        # paths, the other options) must still collect, so collect it on this machine's executor.
        done = exercise(re.sub(r"--executor=gpus", "--executor=local", command), tmp_path)
    assert done.returncode == 0, f"{page}: {command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    words = shlex.split(command)
    if "pytest" in words[:3]:
        # "41/136 tests collected", node ids, or (-qq) "claims/x.py: 16"
        assert re.search(r"\b\d+ (tests? )?(collected|selected)|::|^\S+\.py: \d+$", done.stdout, re.M), (
            done.stdout[-1000:])


def test_every_pytest_option_is_in_the_options_page():
    source = (REPO_ROOT / "fixtures" / "options.py").read_text()
    options = set(re.findall(r'addoption\("(--[a-z-]+)"', source))
    page = (REPO_ROOT / "docs" / "options.md").read_text()
    assert options and not [o for o in options if f"`{o}" not in page], options


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_local_link_resolves(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and file.suffix == ".md":
            headings = {slug(h) for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
            assert anchor in headings, f"{page.name}: link to {target}: no such heading"


def test_the_readmes_verdict_table_is_the_verdicts_commands_output():
    text = README.read_text()
    found = re.search(r"<!-- verdicts: (.*?) -->\n(.*?)\n<!-- /verdicts -->", text, re.S)
    assert found, "README.md: no <!-- verdicts: FILES --> ... <!-- /verdicts --> block"
    files = found.group(1).split()
    rows = [row for f in files for row in load_claims(REPO_ROOT / f)]
    assert found.group(2).strip() == verdict_table(rows, tuple(PROFILES)), (
        "README.md's verdict table is stale: paste the output of python -m harness verdicts "
        + " ".join(files))


@pytest.mark.parametrize("broken", ["pytest claims/ -m fulll", "python -m harness compare BASE NEW --fail-on drif",
                                    "python -m harness nosuchcommand"])
def test_a_broken_documented_command_fails(broken, tmp_path):
    """The checker's own red light: a misspelled marker, choice or command is not exercised green."""
    assert exercise(broken, tmp_path).returncode != 0
