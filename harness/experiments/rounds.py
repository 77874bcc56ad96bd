"""Sequential rounds: every undecided claim's next look, trained in one submission per look.

Under ``--seeds=auto`` each claim has a group-sequential design
(:class:`harness.judging.sequential.Design`: looks at 5, 10, 20, ... seeds up to its arm's
maximum). Before the claim tests run, the session makes the looks in rounds: round ``k`` hands
the seeds of look ``k`` of every arm some undecided claim needs to the executor at once (a GPU
pool or a Slurm array stays full; runs several claims share are trained once, and a decided
claim's arm gets no new seeds unless another undecided claim needs it), then judges each
undecided claim on them and records its decision. The claim tests then run once each, on the
seeds of the look at which their design stopped, from memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..judging import sequential
from ..judging.stats import Verdict


@dataclass
class Probe:
    """One claim under sequential seeds.

    Parameters
    ----------
    name : str
        The claim (its test's node id).
    profile, arm : str
        Whose runs it judges.
    history : harness.judging.sequential.History
        Its design and the looks made so far.
    judge : callable
        ``judge(seeds) -> Verdict | None``: the claim's gated verdict over ``seeds``, or None
        when it reaches none (a skip, a failed run, a crash: its test then reports that).
    """

    name: str
    profile: str
    arm: str
    history: sequential.History
    judge: Callable[[list[int]], Verdict | None]

    def live(self, k: int) -> bool:
        return not self.history.ended and not self.history.stopped and k < len(self.history.design.looks)


def run_rounds(session, probes: list[Probe]) -> None:
    """Make every probe's looks in rounds (see the module docstring), appending each look to
    its history."""
    k = 0
    while True:
        live = [p for p in probes if p.live(k)]
        if not live:
            break
        seeds = {(p.profile, p.arm): session.seed_list(p.history.design.looks[k]) for p in live}
        session.show_line(f"sequential seeds, look {k + 1}: {len(live)} undecided claim(s) on "
                          f"{len(seeds)} arm(s), "
                          + ", ".join(f"{arm} {len(s)} seeds" for (_, arm), s in seeds.items()))
        session.prefetch(list(seeds), seeds)
        for probe in live:
            verdict = probe.judge(seeds[(probe.profile, probe.arm)])
            if verdict is None:
                probe.history.ended = True
                continue
            probe.history.looks.append(sequential.decide(verdict, probe.history.design, k))
        k += 1
