"""The HTML report: the paper's claims, the methods under test and the zoo apart, the paper's
figures redrawn from our runs, environment.

The page opens with counts split by kind (:func:`claim_kind`): the paper's claims, the zoo's
measurements (long-tail baselines measured without ``--method``, not asserted) and the methods
under test, with "expected at quick scale" as a qualifier of refuted and inconclusive. Then a
table of the paper's claims, the methods under test and the zoo each as one row per (method,
arm, profile) with a column per claim, and the details, figures included, section by section.
Every p shown is the one of the test that decided the verdict (:func:`deciding_p`).

A report directory holds three files:

* ``index.html`` - one self-contained page (Jinja2; matplotlib SVG inlined; no network),
* ``claims.json`` - one object per claim test,
* ``results.jsonl`` - the run records the claims used, one JSON object per line,

and ``reports/latest`` points at the newest one. Claims hand their figures over as plain data
(see :func:`line_figure`), so ``python -m harness report`` redraws everything from the store
without training.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import io
import json
import math
import os
import secrets
from pathlib import Path

from ..data import REPO_ROOT
from ..runs.store import atomic_write_json, strict_json

DEFAULT_REPORT_DIR = REPO_ROOT / "reports"


def line_figure(fig_id: str, title: str, xlabel: str, ylabel: str, series: list[dict],
                xscale: str = "log", diagonal: bool = False, vlines=(), caption: str = "") -> dict:
    """A figure as data: ``series`` items have ``label``, ``x``, ``y`` and optional ``yerr``."""
    return {"id": fig_id, "title": title, "xlabel": xlabel, "ylabel": ylabel, "series": series,
            "xscale": xscale, "diagonal": diagonal, "vlines": list(vlines), "caption": caption}


FLOOR_P = 1e-20  # the sequence figure's smallest p (its -log10 axis tops out at 20)


def sequence_figure(fig_id: str, title: str, sequential: dict) -> dict:
    """The figure of a claim under sequential seeds: at each look, -log10 of the family's
    supporting and refuting p (where the step-down stopped) against -log10 of the boundary each
    was held to; a statistic above its boundary stopped the claim."""
    looks = sequential["looks"]
    n = [x["n"] for x in looks]

    def minus_log(values):  # a level of 0 (a boundary past any t) would squash the axis
        return [-math.log10(max(v, FLOOR_P)) for v in values]

    return line_figure(fig_id, title, "seeds per arm (look)", "-log10 p", [
        {"label": "supporting p", "x": n, "y": minus_log([x["support_p"] for x in looks])},
        {"label": "its boundary", "x": n, "y": minus_log([x["support_level"] for x in looks]),
         "linestyle": "--"},
        {"label": "refuting p", "x": n, "y": minus_log([x["refute_p"] for x in looks]), "marker": "v"},
        {"label": "its boundary (refuting)", "x": n, "y": minus_log([x["refute_level"] for x in looks]),
         "linestyle": ":"},
    ], xscale="log", caption=f"{sequential['design']['spending']} spending of alpha = "
                            f"{sequential['design']['alpha']} over looks at "
                            f"{', '.join(map(str, sequential['design']['looks']))} seeds; stopped at "
                            f"{sequential['stopped_at']} ({sequential.get('stop_label', sequential['stop'])}); "
                            f"p-values and levels below {FLOOR_P:g} are drawn at {FLOOR_P:g}.")


def boundary_figure(fig_id: str, title: str, axis: list, labels: list, points: list, point_labels: list,
                    caption: str = "") -> dict:
    """A decision-boundary figure: a label grid over ``axis`` x ``axis`` and labelled 2D points."""
    return {"id": fig_id, "kind": "boundary", "title": title, "axis": axis, "labels": labels,
            "points": points, "point_labels": point_labels, "caption": caption}


def draw_boundary(ax, figure: dict) -> None:
    import numpy as np

    axis, labels = np.asarray(figure["axis"]), np.asarray(figure["labels"], dtype=float)
    ax.contourf(axis, axis, labels, levels=[-0.5, 0.5, 1.5], colors=["#dbe9f6", "#f9dcc4"])
    ax.contour(axis, axis, labels, levels=[0.5], colors="k", linewidths=1)
    points, point_labels = np.asarray(figure["points"]), np.asarray(figure["point_labels"])
    for label, colour, name in ((0, "#1f77b4", "majority"), (1, "#d62728", "minority")):
        chosen = points[point_labels == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=6 if label == 0 else 14, c=colour, label=name)
    ax.set_aspect("equal")


def render_svg(figure: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    if figure.get("kind") == "boundary":
        draw_boundary(ax, figure)
        ax.set_title(figure["title"], fontsize=10)
        ax.legend(fontsize=7)
        return svg_of(fig, plt)
    for s in figure["series"]:
        yerr = s.get("yerr")
        if yerr is not None:
            yerr = [0.0 if (e is None or (isinstance(e, float) and math.isnan(e))) else e for e in yerr]
        # Style keys a series may carry, so that coinciding lines stay visible (e.g. a wide
        # translucent line under a thin one).
        ax.errorbar(s["x"], s["y"], yerr=yerr, label=s["label"], marker=s.get("marker", "o"),
                    markersize=s.get("markersize", 4), capsize=3, linestyle=s.get("linestyle", "-"),
                    linewidth=s.get("linewidth", 1.3), alpha=s.get("alpha", 1.0),
                    zorder=s.get("zorder", 2))
    if figure.get("xscale"):
        ax.set_xscale(figure["xscale"])
    if figure.get("diagonal"):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=1, label="y = x")
        if figure.get("xscale") == "log":
            ax.set_yscale("log")
    for v in figure.get("vlines", []):
        ax.axvline(v["x"], color="grey", linestyle="--", linewidth=1)
        ax.annotate(v.get("label", ""), (v["x"], 1.0), xycoords=("data", "axes fraction"),
                    fontsize=7, ha="left", va="top", color="grey")
    ax.set_xlabel(figure["xlabel"])
    ax.set_ylabel(figure["ylabel"])
    ax.set_title(figure["title"], fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return svg_of(fig, plt)


@functools.lru_cache(maxsize=1)
def renderer_digest() -> bytes:
    """This module's drawing code and the matplotlib that draws: read once per process."""
    import matplotlib

    return hashlib.sha256(Path(__file__).read_bytes()).digest() + matplotlib.__version__.encode()


def figure_key(figure: dict) -> str:
    """What an SVG is a function of: the figure's data and :func:`renderer_digest`. A changed
    figure, renderer or matplotlib is a new key."""
    digest = hashlib.sha256(json.dumps(figure, sort_keys=True, default=str).encode())
    digest.update(renderer_digest())
    return digest.hexdigest()[:32]


def figure_cache_dir() -> Path:
    from ..data import cache_dir

    return cache_dir() / "figures"


def render_all(figures: list[dict]) -> list[str]:
    """SVGs of ``figures``, in order. A figure drawn before (the same data, drawing code and
    matplotlib: :func:`figure_key`) is read from the figure cache: a warm rerun of a suite
    whose runs are all stored redraws nothing (drawing was about half of a warm quick rerun).
    The rest are drawn (:func:`draw_all`) and cached; a cache that cannot be written is only
    slower."""
    folder = figure_cache_dir()
    keys = [figure_key(f) for f in figures]
    svgs: dict[str, str] = {}
    for key in dict.fromkeys(keys):
        try:
            svgs[key] = (folder / f"{key}.svg").read_text()
        except OSError:
            pass
    todo = {k: f for k, f in zip(keys, figures) if k not in svgs}  # each new figure once
    for key, svg in zip(todo, draw_all(list(todo.values()))):
        svgs[key] = svg
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(folder / f"{key}.svg", svg)
        except OSError:
            pass
    return [svgs[k] for k in keys]


def draw_all(figures: list[dict]) -> list[str]:
    """SVGs of ``figures``, in order: drawn by forked processes, one per core, when there are
    enough figures to pay for them (matplotlib takes ~0.5 s per figure, the report ~25); in
    this process where fork is unavailable."""
    import multiprocessing
    import os

    workers = min(os.cpu_count() or 1, len(figures) // 4)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [render_svg(f) for f in figures]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imported once here, not once per forked process)

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(render_svg, figures, chunksize=1)


def svg_of(fig, plt) -> str:
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.find("<svg"):]  # drop the XML prolog so the SVG inlines in HTML


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>imbalance-claims report {{ run_id }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.supported { background: #e3f5e1; } .refuted { background: #f7c9c4; } .inconclusive { background: #fbeed5; }
.error { background: #e6c3f0; } .skipped { background: #eeeeee; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .fig { max-width: 540px; }
.caption { font-size: 0.82em; color: #555; } blockquote { color: #444; border-left: 3px solid #ccc;
margin: 0.5em 0; padding-left: 0.8em; } pre { white-space: pre-wrap; font-size: 0.8em; background: #f8f8f8; padding: 0.6em; }
.badge { font-size: 0.8em; padding: 1px 5px; border-radius: 3px; background: #ffe08a; }
table.counts { font-size: 1em; } table.counts th { width: 17em; }
</style></head><body>
{% macro grid(rows, columns, table_id) %}<table id="{{ table_id }}"><tr><th>method</th><th>arm</th><th>profile</th>
{% if several %}<th>session</th>{% endif %}{% for t in columns %}<th>{{ t }}</th>{% endfor %}</tr>
{% for row in rows %}<tr><td>{{ row.method }}</td><td>{{ row.arm }}</td><td>{{ row.profile }}</td>
{% if several %}<td>{{ row.session }}</td>{% endif %}
{% for cell in row.cells %}<td class="{{ cell.css }}">{% if cell.anchor %}<a href="#{{ cell.anchor }}">{{ cell.verdict }}</a>{% else %}{{ cell.verdict }}{% endif %}
{% if cell.effect is not none %}<br>effect {{ fmt(cell.effect) }} [{{ fmt(cell.ci[0]) }}, {{ fmt(cell.ci[1]) }}]<br>p {{ fmt(cell.p) }} ({{ cell.p_kind }}){% elif cell.note %}<br><span class="caption">{{ cell.note }}</span>{% endif %}</td>
{% endfor %}</tr>{% endfor %}</table>{% endmacro %}
{% set lead = (groups|selectattr('total')|first) or groups[0] %}
<h1>imbalance-claims: {{ lead.title }} &mdash; {{ lead.text }}{% if comparison %};
regression gate {{ 'FAILED' if comparison.failed else 'passed' }}{% endif %}</h1>
<table class="counts" id="counts">{% for g in groups %}
<tr id="count-{{ g.kind }}"><th>{{ g.title }} ({{ g.total }})</th><td>{{ g.text }}</td></tr>{% endfor %}
</table>
<p>Run <code>{{ run_id }}</code>, generated {{ generated }}.{% if sessions_line %} {{ sessions_line }}{% endif %}
Paper: <em>On Representation Learning under Class Imbalance</em>.
<b>The paper's claims</b> are its takeaways, asserted; <b>methods under test</b> are claims about
a method given with <code>--method</code>, asserted but not the paper's; <b>zoo measurements</b>
are the long-tail baselines measured for the report without <code>--method</code>, not asserted.
A claim is <b>supported</b> when its statistic, computed from the runs below, clears the
threshold declared in the test before any result was seen; <b>refuted</b> when the data show the
opposite (or an effect beyond the declared margin); <b>inconclusive</b> when neither: its details
then give the smallest effect these seeds could detect. <b>error</b> means the claim produced no
verdict (a crash, missing data, seeds that do not reach the runs); skipped claims are counted
apart. <b>expected at quick scale</b> qualifies a refuted or inconclusive claim declared unable to
hold at the quick scale (xfail, each with the numbers of the scales searched); XPASS marks one
that held anyway. Every p is Holm-adjusted and belongs to the test that decided the verdict: the
refuting test of a refuted claim, else the supporting tests (the weakest of them).
Every arm first passes a <b>gate</b>: its reference models must beat the class prior.</p>
{% if legacy_count %}<p><b>Note:</b> {{ legacy_count }} claim(s) come from a store written before
sessions had ids: their session is unknown, and each may be older than the
sessions beside it.</p>{% endif %}
{% if comparison %}<h2>Against the baseline</h2>
<p>Compared with <code>{{ comparison.baseline }}</code> (fail on {{ comparison.fail_on }}):
<b>{{ 'FAILED' if comparison.failed else 'passed' }}</b>.</p>
<pre>{{ comparison.lines|join('\\n') }}</pre>{% endif %}
<h2 id="paper-claims">The paper's claims</h2>
{% if paper_claims %}<table id="paper-table"><tr><th>takeaway</th><th>arm</th><th>claim</th><th>profile</th>
{% if several %}<th>session</th>{% endif %}<th>verdict</th><th>pytest</th>
<th>effect [CI]</th><th>effect measures (sign that supports)</th><th>p (Holm), deciding test</th><th>seeds</th></tr>
{% for c in paper_claims %}{% set v = c.verdict %}<tr class="{{ c.css }}">
<td>{{ c.takeaway }}</td><td>{{ c.arm }}</td><td><a href="#{{ c.anchor }}">{{ c.title }}</a>
{% if c.badge %}<span class="badge">{{ c.badge }}</span>{% endif %}</td>
<td>{{ c.profile }}</td>{% if several %}<td>{{ c.session_label }}</td>{% endif %}
<td>{{ c.verdict_label }}</td><td>{{ c.pytest_label }}</td>
{% if v %}<td>{{ fmt(v.effect) }} [{{ fmt(v.ci[0]) }}, {{ fmt(v.ci[1]) }}]</td><td>{{ v.effect_unit }}</td>
<td>{{ fmt(c.p) }} ({{ c.p_kind }})</td><td>{{ v.seeds|length }}{% if v.sequential %} (sequential: {{ v.sequential.stop_label or v.sequential.stop }}){% endif %}</td>
{% else %}<td colspan="4">{{ c.error }}</td>{% endif %}</tr>
{% endfor %}</table>{% else %}<p>None in this report.</p>{% endif %}
{% if methods_rows %}<h2 id="methods">Methods under test</h2>
<p>Each method given with <code>--method</code>, against ERM and oversampling under imbalance,
against the strongest baseline of the zoo, and at balance (non-inferiority); paired over seeds,
Holm over ratios. Each cell: the verdict (linked to its details), the effect [CI] and the deciding
p (Holm). Asserted claims, though not the paper's.</p>
{{ grid(methods_rows, methods_columns, "methods-table") }}{% endif %}
{% if zoo_rows %}<h2 id="zoo">The zoo: long-tail baselines, measured, not asserted</h2>
<p>Without <code>--method</code>, each baseline of the zoo (each as its paper defines it) is
measured on the methods arms with the claims a method under test must pass first. Each cell: the
verdict (linked to its details), the effect [CI] and the deciding p (Holm). These are
measurements shown beside the paper's claims, not claims the suite asserts (xfail when not
supported, XPASS when they hold); "beats the strongest baseline" and "non-inferior at balance"
are judged only for a method under test.</p>
{{ grid(zoo_rows, zoo_columns, "zoo-table") }}
{% for item in zoo_left_out %}<p class="left-out"><b>Left out of the {{ item.profile }} zoo{% if item.arm %} on {{ item.arm }}{% endif %}:</b>
<code>{{ item.method }}</code> &mdash; {{ item.reason }}</p>{% endfor %}{% endif %}
{% for section in sections %}
<h2 id="{{ section.id }}">{{ section.title }}</h2>
<div class="figs">{% for f in section.figures %}<div class="fig">{{ f.svg|safe }}
<div class="caption">{{ f.caption }}</div></div>{% endfor %}</div>
{% for c in section.claims %}{% set v = c.verdict %}
<h3 id="{{ c.anchor }}">{{ c.title }}{% if c.method %} ({{ c.method }}){% endif %} &mdash; {{ c.arm }}
({{ c.profile }}{% if several %}, session {{ c.session_label }}{% endif %}): {{ c.verdict_label }}
{% if c.badge %}<span class="badge">{{ c.badge }}</span>{% endif %}</h3>
<blockquote>{{ c.quote }}</blockquote>
{% if c.exploratory %}<p><b>{{ c.exploratory.label }}.</b> {{ c.exploratory.why }}</p>{% endif %}
{% if v %}
{% if v.reason %}<p><b>Why:</b> {{ v.reason }}</p>{% endif %}
<p>{{ v.summary }}</p><p><b>Statistic:</b> {{ v.statistic }} (alpha = {{ v.alpha }}).
<b>Effect:</b> {{ v.effect_unit }}. <b>Deciding test:</b> {{ c.decided_by or '-' }}, {{ c.p_kind }}
p (Holm) = {{ fmt(c.p) }}.</p>
{% if v.gate %}<p><b>Gate:</b> {{ v.gate.summary }}</p>{% endif %}
{% if v.sequential %}{% set q = v.sequential %}<p><b>Sequential seeds:</b> {{ q.design.spending }} spending of
alpha = {{ q.design.alpha }} over looks at {{ q.design.looks|join(', ') }} seeds; stopped at {{ q.stopped_at }}
seeds ({{ q.stop }}: {{ q.why }}). At each look the family's statistic is the step-down's p where it stopped,
against the sequential boundary it was held to (Holm's step-down with each step's own design).
Futility rule: {{ q.design.futility }}.</p>
<table><tr><th>seeds</th><th>decision</th><th>supporting p</th><th>its boundary</th><th>refuting p</th><th>its boundary</th><th>alpha spent</th><th>why</th></tr>
{% for x in q.looks %}<tr><td>{{ x.n }}</td><td>{{ x.decision }}</td><td>{{ fmt(x.support_p) }}</td><td>{{ fmt(x.support_level) }}</td>
<td>{{ fmt(x.refute_p) }}</td><td>{{ fmt(x.refute_level) }}</td><td>{{ fmt(x.alpha_spent) }}</td><td>{{ x.why }}</td></tr>{% endfor %}</table>{% endif %}
{% if c.xfail_reason %}<p><b>{{ 'Measured for the report' if c.xfail_kind == 'report only' else 'Expected not to hold at quick scale' }}:</b> {{ c.xfail_reason }}</p>{% endif %}
{% if c.evidence %}<p><b>Evidence</b> of the scales searched (<a href="{{ c.evidence_href }}"><code>{{ c.evidence.path }}</code></a>):</p>
<table><tr><th>scale</th><th>seeds</th><th>verdict</th><th>effect [CI]</th><th>p (Holm), deciding test</th><th>commit, date</th></tr>
{% for e in c.evidence.entries %}<tr class="{{ e.verdict }}"><td>{{ e.scale }}</td><td>{{ e.seeds|length }} ({{ e.seeds[0] }}-{{ e.seeds[-1] }})</td>
<td>{{ e.verdict }}</td><td>{{ fmt(e.effect) }} [{{ fmt(e.ci[0]) }}, {{ fmt(e.ci[1]) }}]</td><td>{{ fmt(e.p_holm) }} ({{ e.p_kind or 'supporting' }})</td>
<td>{{ e.commit }}, {{ e.date }}</td></tr>{% endfor %}</table>{% endif %}
<table><tr><th>comparison</th><th>effect</th><th>CI</th><th>p</th><th>p (Holm)</th><th>holds</th><th>refuted (Holm p)</th></tr>
{% for row in v.comparisons %}<tr><td>{{ row.label }}</td><td>{{ fmt(row.effect) }}</td>
<td>[{{ fmt(row.ci[0]) }}, {{ fmt(row.ci[1]) }}]</td><td>{{ fmt(row.p_value) }}</td>
<td>{{ fmt(row.p_adjusted) }}</td><td>{{ 'yes' if row.rejected else ('no: degenerate (zero spread)' if row.degenerate else 'no') }}</td>
<td>{{ ('yes' if row.refuted else 'no') ~ ' (' ~ fmt(row.p_refute_adjusted) ~ ')' if row.p_refute_adjusted is defined else '-' }}</td></tr>{% endfor %}
</table>
{% else %}<p><b>{{ c.verdict_label }}:</b> {{ c.error }}</p>{% endif %}
{% endfor %}{% endfor %}
<h2>Environment</h2>
<table>{% for k, v in environment %}<tr><th>{{ k }}</th><td><pre>{{ v }}</pre></td></tr>{% endfor %}</table>
</body></html>
"""

# The header's split: what kind of row a claim test is (see claim_kind), in the header's order.
KINDS = {"paper": "the paper's claims", "zoo": "zoo measurements (not asserted)",
         "method": "methods under test"}
# The verdicts a row is counted under; "expected at quick scale" qualifies refuted and
# inconclusive (see verdict_counts), it is not a verdict of its own.
VERDICT_ORDER = ("supported", "refuted", "inconclusive", "error", "skipped")


def verdict_label(claim: dict) -> str:
    """The three-way verdict of a claim with one, else its pytest outcome (error / skipped)."""
    verdict = claim.get("verdict")
    if verdict is None:
        return claim["outcome"]
    return verdict.get("outcome") or ("supported" if verdict["supported"] else "not supported")


def claim_kind(claim: dict) -> str:
    """``"zoo"`` for a zoo measurement (a long-tail baseline measured for the report without
    --method: its xfail says "report only"), ``"method"`` for a claim about a method under test
    (takeaway M with --method: asserted, not the paper's), else ``"paper"``."""
    if claim.get("xfail_kind") == "report only":
        return "zoo"
    return "method" if str(claim.get("takeaway")) == "M" else "paper"


def verdict_counts(claims: list[dict]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts by kind (:data:`KINDS`) and verdict (:data:`VERDICT_ORDER`), each
    ``{"n": claims, "expected": of them xfailed as expected at quick scale, "xpass": of them
    held although expected not to at quick scale}``."""
    counts = {kind: {label: {"n": 0, "expected": 0, "xpass": 0} for label in VERDICT_ORDER}
              for kind in KINDS}
    for c in claims:
        cell = counts[claim_kind(c)].setdefault(verdict_label(c), {"n": 0, "expected": 0, "xpass": 0})
        cell["n"] += 1
        if c.get("xfail_kind") == "quick scale":
            cell["expected"] += c["outcome"] == "xfailed"
            cell["xpass"] += c["outcome"] == "xpassed"
    return counts


def counts_text(counts: dict[str, dict[str, int]]) -> str:
    """One kind's counts in words: "11 supported, 6 refuted (6 expected at quick scale), 8
    inconclusive (7 expected at quick scale); 1 skipped"."""
    parts = []
    for label, cell in counts.items():
        if not cell["n"] or label == "skipped":
            continue
        qualifiers = ([f"{cell['expected']} expected at quick scale"] if cell["expected"] else []) + (
            [f"{cell['xpass']} XPASS: held although expected not to at quick scale"]
            if cell["xpass"] else [])
        parts.append(f"{cell['n']} {label}" + (f" ({'; '.join(qualifiers)})" if qualifiers else ""))
    skipped = counts.get("skipped", {}).get("n", 0)
    return (", ".join(parts) or "none") + (f"; {skipped} skipped" if skipped else "")


def count_groups(claims: list[dict]) -> list[dict]:
    """The header's rows: ``kind``, ``title``, ``total`` and ``text`` of the paper's claims
    (always), then the zoo's measurements and the methods under test where there are any."""
    counts = verdict_counts(claims)
    groups = []
    for kind, title in KINDS.items():
        total = sum(cell["n"] for cell in counts[kind].values())
        if total or kind == "paper":
            groups.append({"kind": kind, "title": title, "total": total,
                           "text": counts_text(counts[kind])})
    return groups


def verdict_summary(claims: list[dict]) -> list[str]:
    """The header's split as terminal lines, one per kind (the plugin's terminal summary)."""
    return [f"{g['title']} ({g['total']}): {g['text']}" for g in count_groups(claims)]


def pytest_label(claim: dict) -> str:
    zoo = claim.get("xfail_kind") == "report only"
    return {"xfailed": "XFAIL (zoo measurement, not asserted)" if zoo else
            "XFAIL (expected not to hold at quick scale)",
            "xpassed": "XPASS (zoo measurement held)" if zoo else
            "XPASS (held although expected not to at this scale)"}.get(claim["outcome"], claim["outcome"])


def deciding_p(verdict: dict) -> tuple[float, str, str]:
    """``(p, kind, comparison)`` of the test that decided ``verdict`` (a verdict dict): what it
    records, or for a verdict stored before it recorded them, worked out from its comparisons
    (:func:`harness.judging.stats.deciding_test`)."""
    from .stats import deciding_test

    if "p_kind" in verdict or not verdict.get("comparisons"):
        return verdict["p_value"], verdict.get("p_kind", "supporting"), verdict.get("decided_by", "")
    return deciding_test(verdict["comparisons"], verdict.get("outcome", ""))


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.4f}"
    return html.escape(str(value))


def new_run_id() -> str:
    """A report's run id, also its session's id in the store: UTC start time, so that ids sort
    in time, and 4 random hex digits."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def environment_rows(session: dict, records: list[dict]) -> list[tuple[str, str]]:
    sources = {}
    for record in records:
        sources[record["spec"]["dataset"]] = dict(
            record.get("data_source") or {},
            classes_in_label_order=record.get("class_names"))  # binary: label 1 is the minority
    versions = records[0]["versions"] if records else {}
    rows = [(k, session[k]) for k in ("session_id", "profiles", "device", "git_commit", "command",
                                      "seeds", "workers", "wall_time_s", "runs_trained",
                                      "runs_loaded", "rendered_by")
            if k in session]
    rows.append(("library versions", json.dumps({**versions, **session.get("versions", {})}, indent=1)))
    rows.append(("data sources", json.dumps(sources, indent=1)))
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in rows]


NO_SESSION = "none (older store)"  # a claim of a store written before sessions had ids


def session_label(claim: dict) -> str:
    return claim.get("session") or NO_SESSION


def decorate(claim: dict, out: Path, several: bool) -> dict:
    """``claim`` with what the page shows of it: anchor, labels, css class, deciding p."""
    exploratory = claim.get("exploratory")
    label = verdict_label(claim)
    anchor = claim["nodeid"].replace("/", "-").replace(":", "-").replace("[", "-").rstrip("]")
    p, p_kind, decided_by = deciding_p(claim["verdict"]) if claim.get("verdict") else (None, "", "")
    return dict(claim, anchor=anchor + (f"--{session_label(claim)}" if several else ""),
                verdict_label=label, pytest_label=pytest_label(claim), css=label.replace(" ", "-"),
                badge=exploratory["label"] if exploratory else "", kind=claim_kind(claim),
                p=p, p_kind=p_kind, decided_by=decided_by, session_label=session_label(claim),
                # the evidence file, linked from wherever the report directory is
                evidence_href=(os.path.relpath(REPO_ROOT / claim["evidence"]["path"], out)
                               if claim.get("evidence") else ""))


def detail_sections(claims: list[dict]) -> list[dict]:
    """The detail sections in page order: one per takeaway, then the methods under test, then
    the zoo; each with its claims and its figures (one per figure id and profile)."""
    titles = {"method": ("methods-details", "Methods under test: details"),
              "zoo": ("zoo-details", "The zoo: details")}
    sections: dict = {}
    order = {"paper": "0", "method": "1", "zoo": "2"}
    for c in claims:
        key = (order[c["kind"]], str(c["takeaway"]) if c["kind"] == "paper" else "")
        if key not in sections:
            sid, title = titles.get(c["kind"], (f"takeaway-{c['takeaway']}", f"Takeaway {c['takeaway']}"))
            sections[key] = {"id": sid, "title": title, "claims": [], "figures": {}}
        sections[key]["claims"].append(c)
        for figure in c.get("figures", []):
            sections[key]["figures"].setdefault(f"{figure['id']}-{c['profile']}", figure)
    return [sections[k] for k in sorted(sections)]


def left_out_of_the_zoo(session: dict, zoo_rows: list[dict]) -> list[dict]:
    """The zoo members each profile shown left out, with the reason its protocol gives
    (``harness.experiments.protocols.ZOO_LEFT_OUT``, recorded by the session as
    ``zoo_left_out``)."""
    profiles = {row["profile"] for row in zoo_rows}
    left_out = []
    for profile, by_arm in sorted((session.get("zoo_left_out") or {}).items()):
        if profile not in profiles:
            continue
        for arm, members in sorted(by_arm.items()):
            if isinstance(members, str):  # a session before 0.6: method -> reason, per profile
                left_out.append({"profile": profile, "arm": "", "method": arm, "reason": members})
            else:
                left_out += [{"profile": profile, "arm": arm, "method": method, "reason": reason}
                             for method, reason in sorted(members.items())]
    return left_out


def write_report(claims: list[dict], records: list[dict], session: dict, report_root: Path,
                 run_id: str | None = None, comparison: dict | None = None,
                 repoint_latest: bool = True) -> Path:
    """Write ``index.html``, ``claims.json`` and ``results.jsonl``; point ``latest`` at them.

    ``run_id`` defaults to the session's id (``session["session_id"]``: a suite session's report
    and its claims in the store share it), else a new one. Claims carry the ``session`` that
    wrote them (``None``: a claim of an older store, which kept none); when they come from
    several sessions, every row names its session. ``comparison`` (``baseline``, ``fail_on``,
    ``failed``, ``lines``, ``result``), from ``--baseline``, is shown at the top of the page and
    written to ``comparison.json``. ``repoint_latest`` false leaves ``latest`` where it is.
    Returns the report directory. Files are written atomically; ``latest`` is switched last.
    """
    from jinja2 import Environment

    run_id = run_id or session.get("session_id") or new_run_id()
    out = Path(report_root) / run_id
    out.mkdir(parents=True, exist_ok=True)
    own = session.get("session_id")
    claims = [c if "session" in c or not own else dict(c, session=own) for c in claims]
    claims = sorted(claims, key=lambda c: (str(c["takeaway"]), c["arm"], c["nodeid"],
                                           c.get("session") or ""))
    shown = sorted({c.get("session") for c in claims}, key=lambda s: s or "")
    several = len(shown) > 1
    legacy = sum(1 for c in claims if "session" in c and c["session"] is None)
    decorated = [decorate(c, out, several) for c in claims]
    sections = detail_sections(decorated)
    svgs = iter(render_all([f for s in sections for f in s["figures"].values()]))
    for n, s in enumerate(sections):
        s["figures"] = [{"svg": unique_ids(next(svgs), f"f{n}-{i}-"), "caption": f.get("caption", "")}
                        for i, f in enumerate(s["figures"].values())]
    methods_rows, zoo_rows = methods_table(decorated), zoo_table(decorated)
    named = [s for s in shown if s]
    sessions_line = (f"Claims of {len(shown)} sessions ({', '.join(s or NO_SESSION for s in shown)}); "
                     "each row names its session." if several else
                     f"Claims of session {named[0]}." if named and named[0] != run_id else "")
    page = Environment(autoescape=True).from_string(TEMPLATE).render(
        run_id=run_id, generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        groups=count_groups(claims), sessions_line=sessions_line, legacy_count=legacy,
        several=several, paper_claims=[c for c in decorated if c["kind"] == "paper"],
        sections=sections, environment=environment_rows(session, records), fmt=fmt,
        comparison=comparison, methods_columns=METHOD_CLAIMS, methods_rows=methods_rows,
        zoo_columns=zoo_columns(decorated), zoo_rows=zoo_rows,
        zoo_left_out=left_out_of_the_zoo(session, zoo_rows))
    write_text_atomic(out / "index.html", page)
    if comparison:
        atomic_write_json(out / "comparison.json", comparison)
    atomic_write_json(out / "claims.json", [summary_of(c) for c in claims])
    write_text_atomic(out / "results.jsonl", "".join(json.dumps(strict_json(r), sort_keys=True) + "\n" for r in records))
    if repoint_latest:
        point_latest(Path(report_root), run_id)
    return out


# The claims of claims/test_methods_under_test.py (test name -> column of the methods table).
METHOD_CLAIM_TESTS = {"test_method_beats_erm_under_imbalance": "beats ERM under imbalance",
                      "test_method_beats_oversampling": "beats oversampling",
                      "test_method_beats_the_strongest_baseline": "beats the strongest baseline",
                      "test_method_is_non_inferior_at_balance": "non-inferior at balance"}
METHOD_CLAIMS = tuple(METHOD_CLAIM_TESTS.values())


def method_column(claim: dict) -> str | None:
    return METHOD_CLAIM_TESTS.get(claim["nodeid"].split("::")[-1].split("[")[0])


def zoo_columns(claims: list[dict]) -> list[str]:
    """The methods table's columns the zoo was measured on (claims/test_methods_under_test.py
    decides which: ``ZOO_MEASURES``), in the table's order."""
    measured = {method_column(c) for c in claims if claim_kind(c) == "zoo"}
    return [column for column in METHOD_CLAIMS if column in measured]


def methods_table(claims: list[dict]) -> list[dict]:
    """One row per (method, arm, profile) of the methods-under-test claims, a cell per claim of
    :data:`METHOD_CLAIMS` (see :func:`comparison_rows`)."""
    return comparison_rows(claims, "method", METHOD_CLAIMS)


def zoo_table(claims: list[dict]) -> list[dict]:
    """One row per (method, arm, profile) of the zoo's measurements, a cell per claim the zoo is
    measured on (see :func:`comparison_rows`)."""
    return comparison_rows(claims, "zoo", zoo_columns(claims))


def comparison_rows(claims: list[dict], kind: str, columns) -> list[dict]:
    """Rows of ``kind``'s claims (:func:`claim_kind`), one per (method, arm, profile) and, when
    the claims come from several sessions, session; each cell the claim's verdict with its effect
    [CI] and deciding p (or its error / skip reason), '-' where it did not run."""
    several = len({c.get("session") for c in claims}) > 1
    rows: dict = {}
    for c in claims:
        column = method_column(c)
        if claim_kind(c) != kind or column not in columns:
            continue
        session = session_label(c) if several else ""
        row = rows.setdefault((c.get("method") or "?", c["arm"], c["profile"], session), {})
        v = c.get("verdict")
        p, p_kind, _ = deciding_p(v) if v else (None, "", "")
        label = verdict_label(c)
        row[column] = {"verdict": label, "css": label.replace(" ", "-"), "anchor": c.get("anchor", ""),
                       "effect": v["effect"] if v else None, "ci": v["ci"] if v else None,
                       "p": p, "p_kind": p_kind, "note": "" if v else c.get("error", "")}
    empty = {"verdict": "-", "css": "", "anchor": "", "effect": None, "note": ""}
    return [{"method": m, "arm": a, "profile": p, "session": s,
             "cells": [cells.get(column, empty) for column in columns]}
            for (m, a, p, s), cells in sorted(rows.items())]


def summary_of(claim: dict) -> dict:
    """The claims.json object of a claim: identity, kind, session, three-way verdict (or the
    error), numbers. ``p_value`` is the deciding test's Holm-adjusted p (``p_kind``: supporting
    or refuting; ``decided_by``: its comparison); ``p_supporting`` the supporting tests' whatever
    the verdict (what ``p_value`` was for every verdict before)."""
    v = claim.get("verdict")
    base = {"nodeid": claim["nodeid"], "takeaway": claim["takeaway"], "arm": claim["arm"],
            "profile": claim["profile"], "title": claim["title"], "verdict": verdict_label(claim),
            "kind": claim_kind(claim), "session": claim.get("session"),
            "outcome": claim["outcome"], "exploratory": claim.get("exploratory"),
            "xfail_reason": claim.get("xfail_reason", ""), "xfail_kind": claim.get("xfail_kind", ""),
            "evidence": claim.get("evidence"), "record_keys": claim.get("record_keys", []),
            "method": claim.get("method", "")}
    if v is None:
        return dict(base, error=claim.get("error", ""))
    p, p_kind, decided_by = deciding_p(v)
    supporting = v.get("p_supporting") if "p_kind" in v else v["p_value"]  # before: p_value was it
    if supporting is None and v.get("comparisons"):
        supporting = max(c["p_adjusted"] for c in v["comparisons"])
    return dict(base, statistic=v["statistic"], effect_unit=v.get("effect_unit", ""),
                p_value=p, p_kind=p_kind, decided_by=decided_by, p_supporting=supporting,
                effect=v["effect"], ci=v["ci"], alpha=v["alpha"],
                reason=v.get("reason", ""), minimal_detectable_effect=v.get("mde"),
                seeds_needed=v.get("seeds_needed"), gate=v.get("gate"), seeds=v["seeds"],
                sequential=v.get("sequential"),
                per_seed=v["per_seed"], comparisons=v["comparisons"])


def unique_ids(svg: str, prefix: str) -> str:
    """Prefix every ``id`` in an inline SVG, and every reference to one, so that several figures
    on one page do not repeat element ids (matplotlib numbers them the same in every figure)."""
    import re

    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    if not ids:
        return svg
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    return re.sub(r'(href="#|url\(#)([^")]+)', lambda m: m.group(1) + (
        prefix + m.group(2) if m.group(2) in ids else m.group(2)), svg)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def point_latest(report_root: Path, run_id: str) -> None:
    link = report_root / "latest"
    tmp = report_root / f".latest.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, link)


def mean_series(label: str, xs, per_seed_values, **style) -> dict:
    """A figure series of means with ±1 standard error (ddof=1) bars, one point per x."""
    from ..judging.stats import mean_se

    stats = [mean_se(v) for v in per_seed_values]
    return {"label": label, "x": list(xs), "y": [m for m, _ in stats], "yerr": [s for _, s in stats],
            **style}
