"""Sequential rounds (harness.experiments.rounds): one submission per look for every undecided
claim's arm, decided claims drop out, and each claim's history is kept."""

import numpy as np

from harness.experiments.rounds import Probe, run_rounds
from harness.judging import sequential
from harness.judging import stats


class FakeSession:
    """What run_rounds asks of a session: seeds, a batched prefetch, a progress line."""

    def __init__(self):
        self.prefetched, self.lines = [], []

    def seed_list(self, n):
        return list(range(n))

    def prefetch(self, arms, seeds):
        self.prefetched.append({arm: len(s) for (_, arm), s in seeds.items()})

    def show_line(self, line):
        self.lines.append(line)


def judge_with(effect, spread=1.0, rng_seed=0):
    """A claim whose single comparison has a true ``effect`` (per-seed differences)."""
    diffs = np.random.default_rng(rng_seed).normal(effect, spread, size=80)

    def judge(seeds):
        n = len(seeds)
        verdict = stats.family_verdict({"c": stats.paired_greater(diffs[:n], np.zeros(n))}, 0.05,
                                       "s", seeds, {})
        return stats.gated(verdict, {"passed": True})
    return judge


def probe(name, arm, judge, maximum=80):
    design = sequential.Design(sequential.doubling_looks(maximum), 0.05)
    return Probe(name, "full", arm, sequential.History(design), judge)


def test_each_round_submits_every_undecided_arm_at_once_and_decided_claims_drop_out():
    session = FakeSession()
    strong = probe("strong", "a", judge_with(2.0))                 # decided at an early look
    slow = probe("slow", "b", judge_with(0.45, rng_seed=3))        # needs more seeds
    shares = probe("shares", "b", judge_with(0.45, rng_seed=4))    # the same arm as slow
    run_rounds(session, [strong, slow, shares])
    first = session.prefetched[0]
    assert first == {"a": 5, "b": 5}  # one submission, both arms, the first look
    assert all(set(batch) <= {"a", "b"} for batch in session.prefetched)
    stop_a = strong.history.looks[-1].n
    assert all("a" not in batch for batch in session.prefetched if list(batch.values())[0] > stop_a)
    assert strong.history.stopped and slow.history.stopped and shares.history.stopped
    assert "look 1" in session.lines[0] and "3 undecided" in session.lines[0]


def test_a_claim_that_reaches_no_verdict_ends_and_is_judged_at_the_look_it_failed():
    session = FakeSession()
    calls = []

    def failing_at_second_look(seeds):
        calls.append(len(seeds))
        return judge_with(1.0, rng_seed=3)(seeds) if len(seeds) == 5 else None

    p = probe("x", "a", failing_at_second_look)
    run_rounds(session, [p])
    assert calls == [5, 10] and p.history.ended
    assert p.history.seeds_now() == 10  # its test runs there and reports why


def test_no_round_goes_past_an_arm_s_maximum():
    session = FakeSession()
    p = probe("x", "a", judge_with(0.0, rng_seed=9), maximum=20)
    run_rounds(session, [p])
    assert max(list(b.values())[0] for b in session.prefetched) <= 20
    assert p.history.looks[-1].decision in ("futile", "inconclusive", "refuted", "supported")
