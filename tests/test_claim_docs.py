"""Claim docstrings agree with the rule that decides their verdicts.

Every claim test declares its comparisons (``@declare_outcomes``); the "supported when / refuted
when / inconclusive when" sentences of its docstring are generated from the verdict rule
(:func:`harness.judging.stats.outcome_rules`), never written by hand, and each verdict is checked
against the declaration when the claim concludes (:func:`harness.judging.stats.check_declared`).
"""

from __future__ import annotations

import importlib.util
import inspect
import re

import pytest

from harness.data import REPO_ROOT
from harness.judging import stats

GENERATED = "Outcomes (generated from the verdict rule"
HAND_WRITTEN_OUTCOME = re.compile(r"\b(supported|refuted|inconclusive|not supported) (when|if)\b", re.I)


def claim_tests():
    for path in sorted((REPO_ROOT / "claims").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"claim_docs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and fn.__module__ == module.__name__:
                yield pytest.param(fn, id=f"{path.stem}::{name}")


@pytest.mark.parametrize("fn", list(claim_tests()))
def test_outcome_sentences_come_from_the_rule(fn):
    assert hasattr(fn, "outcome_rules"), f"{fn.__name__} has no @declare_outcomes(...)"
    rules, alpha = fn.outcome_rules
    doc = inspect.cleandoc(fn.__doc__)
    written, _, generated = doc.partition(GENERATED)
    written = " ".join(written.split())
    assert generated, "the docstring lacks the generated outcome paragraph"
    assert " ".join((GENERATED + generated).split()) == " ".join(stats.outcome_rules(rules, alpha).split())
    found = HAND_WRITTEN_OUTCOME.search(written)
    assert found is None, f"hand-written outcome sentence {found.group(0)!r}: the rule writes these"
    assert f"alpha = {alpha:g}" in written, "the statistic paragraph states a different alpha"
    for rule in rules:
        if rule.margin:
            assert f"{rule.margin:g}" in written, f"the statistic paragraph never states margin {rule.margin:g}"


def test_a_verdict_outside_the_declaration_is_an_error():
    gain, margin = stats.Rule("a - b", "greater"), stats.Rule("c - d", "less", 0.02)
    a, b = [1, 2, 3.5], [0, 0, 0]

    def verdict(**tests):
        return stats.family_verdict(tests, 0.05, "t", range(3), {})

    both = verdict(x=stats.paired_greater(a, b, rule=gain), y=stats.paired_less(a, b, margin=0.02, rule=margin))
    stats.check_declared(both, ((gain, margin), 0.05))
    with pytest.raises(ValueError, match="tests no rule"):  # a comparison made for no declared rule
        stats.check_declared(verdict(x=stats.paired_greater(a, b)), ((gain,), 0.05))
    with pytest.raises(ValueError, match="never makes"):  # a declared comparison left out
        stats.check_declared(verdict(x=stats.paired_greater(a, b, rule=gain)), ((gain, margin), 0.05))
    optional = stats.Rule("c - d", "less", 0.02, required=False)
    stats.check_declared(verdict(x=stats.paired_greater(a, b, rule=gain)), ((gain, optional), 0.05))
    with pytest.raises(ValueError, match="alpha"):
        stats.check_declared(both, ((gain, margin), 0.01))
    with pytest.raises(ValueError, match="not less at margin 0"):  # a rule tested the wrong way
        stats.paired_less(a, b, rule=gain)


def test_the_generated_sentences_follow_each_alternative():
    text = stats.outcome_rules([stats.Rule("gain", "greater"), stats.Rule("excess", "less", 0.01),
                                stats.Rule("shift", "equivalence", 0.03)], 0.05)
    assert "gain > 0" in text and "gain significantly < 0" in text
    assert "excess < 0.01" in text and "excess significantly > 0.01" in text
    assert "|shift| < 0.03" in text and "shift significantly outside +-0.03" in text
    assert "alpha = 0.05" in text and "zero spread" in text
