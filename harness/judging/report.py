"""The HTML report: verdict table, the paper's figures redrawn from our runs, environment.

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


def render_all(figures: list[dict]) -> list[str]:
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
</style></head><body>
<h1>imbalance-claims: {{ claims|length }} claim tests &mdash; {{ headline }}</h1>
<p>Run <code>{{ run_id }}</code>, generated {{ generated }}. Paper: <em>On Representation Learning
under Class Imbalance</em>. Each row is one claim test. A claim is <b>supported</b> when its
statistic, computed from the runs below, clears the threshold declared in the test before any
result was seen; <b>refuted</b> when the data show the opposite (or an effect beyond the declared
margin); <b>inconclusive</b> when neither: the row then gives the smallest effect these seeds could
detect. <b>error</b> means the claim produced no verdict (a crash, missing data, seeds that do not
reach the runs); <b>refuted / inconclusive at quick scale</b> counts claims declared unable to
hold at the quick scale (xfail, each with the numbers of the scales searched), and XPASS one that
held anyway; <b>zoo</b> counts the long-tail baselines measured for the report, not asserted.
Every arm first passes a <b>gate</b>: its reference models must beat the class prior.</p>
{% if comparison %}<h2>Against the baseline</h2>
<p>Compared with <code>{{ comparison.baseline }}</code> (fail on {{ comparison.fail_on }}):
<b>{{ 'FAILED' if comparison.failed else 'passed' }}</b>.</p>
<pre>{{ comparison.lines|join('\n') }}</pre>{% endif %}
<h2>Verdicts</h2>
<table><tr><th>takeaway</th><th>arm</th><th>claim</th><th>profile</th><th>verdict</th><th>pytest</th>
<th>effect [CI]</th><th>effect measures (sign that supports)</th><th>p (Holm)</th><th>seeds</th></tr>
{% for c in claims %}{% set v = c.verdict %}<tr class="{{ c.css }}">
<td>{{ c.takeaway }}</td><td>{{ c.arm }}</td><td><a href="#{{ c.anchor }}">{{ c.title }}</a>
{% if c.badge %}<span class="badge">{{ c.badge }}</span>{% endif %}</td>
<td>{{ c.profile }}</td><td>{{ c.verdict_label }}</td><td>{{ c.pytest_label }}</td>
{% if v %}<td>{{ fmt(v.effect) }} [{{ fmt(v.ci[0]) }}, {{ fmt(v.ci[1]) }}]</td><td>{{ v.effect_unit }}</td>
<td>{{ fmt(v.p_value) }}</td><td>{{ v.seeds|length }}</td>
{% else %}<td colspan="4">{{ c.error }}</td>{% endif %}</tr>
{% endfor %}</table>
{% for takeaway, group in sections %}
{% if takeaway == 'M' %}<h2>Methods under test</h2>
<p>Each method's balanced test error against ERM and oversampling under imbalance, against the
strongest baseline of the zoo, and at balance (non-inferiority); paired over seeds, Holm over
ratios. Zoo baselines run without <code>--method</code> are measurements, not claims.</p>
<table><tr><th>method</th><th>arm</th><th>profile</th>{% for t in methods_columns %}<th>{{ t }}</th>{% endfor %}</tr>
{% for row in methods_table %}<tr><td>{{ row.method }}</td><td>{{ row.arm }}</td><td>{{ row.profile }}</td>
{% for cell in row.cells %}<td class="{{ cell.css }}">{{ cell.text }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}<h2>Takeaway {{ takeaway }}</h2>{% endif %}
<div class="figs">{% for f in group.figures %}<div class="fig">{{ f.svg|safe }}
<div class="caption">{{ f.caption }}</div></div>{% endfor %}</div>
{% for c in group.claims %}{% set v = c.verdict %}
<h3 id="{{ c.anchor }}">{{ c.title }} &mdash; {{ c.arm }} ({{ c.profile }}): {{ c.verdict_label }}
{% if c.badge %}<span class="badge">{{ c.badge }}</span>{% endif %}</h3>
<blockquote>{{ c.quote }}</blockquote>
{% if c.exploratory %}<p><b>{{ c.exploratory.label }}.</b> {{ c.exploratory.why }}</p>{% endif %}
{% if v %}
{% if v.reason %}<p><b>Why:</b> {{ v.reason }}</p>{% endif %}
<p>{{ v.summary }}</p><p><b>Statistic:</b> {{ v.statistic }} (alpha = {{ v.alpha }}).
<b>Effect:</b> {{ v.effect_unit }}.</p>
{% if v.gate %}<p><b>Gate:</b> {{ v.gate.summary }}</p>{% endif %}
{% if c.xfail_reason %}<p><b>{{ 'Measured for the report' if c.xfail_kind == 'report only' else 'Expected not to hold at quick scale' }}:</b> {{ c.xfail_reason }}</p>{% endif %}
{% if c.evidence %}<p><b>Evidence</b> of the scales searched (<a href="{{ c.evidence_href }}"><code>{{ c.evidence.path }}</code></a>):</p>
<table><tr><th>scale</th><th>seeds</th><th>verdict</th><th>effect [CI]</th><th>p (Holm)</th><th>commit, date</th></tr>
{% for e in c.evidence.entries %}<tr class="{{ e.verdict }}"><td>{{ e.scale }}</td><td>{{ e.seeds|length }} ({{ e.seeds[0] }}-{{ e.seeds[-1] }})</td>
<td>{{ e.verdict }}</td><td>{{ fmt(e.effect) }} [{{ fmt(e.ci[0]) }}, {{ fmt(e.ci[1]) }}]</td><td>{{ fmt(e.p_holm) }}</td>
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

VERDICT_ORDER = ("supported", "refuted", "inconclusive", "refuted at quick scale",
                 "inconclusive at quick scale", "zoo: supported", "zoo: refuted", "zoo: inconclusive",
                 "error", "skipped")


def verdict_label(claim: dict) -> str:
    """The three-way verdict of a claim with one, else its pytest outcome (error / skipped)."""
    verdict = claim.get("verdict")
    if verdict is None:
        return claim["outcome"]
    return verdict.get("outcome") or ("supported" if verdict["supported"] else "not supported")


def count_label(claim: dict) -> str:
    """The verdict a claim is counted under. The zoo's measurements (baselines shown for the
    report, not asserted) are counted apart whatever they show; an expected failure at quick
    scale (xfailed) is counted as refuted or inconclusive *at quick scale*; a claim that held
    (passed, or XPASS) is supported."""
    label = verdict_label(claim)
    if claim.get("xfail_kind") == "report only" and claim.get("verdict") is not None:
        return f"zoo: {label}"
    if claim["outcome"] != "xfailed":
        return label
    return f"{label} at quick scale"


def verdict_counts(claims: list[dict]) -> dict[str, int]:
    """How many claims are supported, refuted, inconclusive, refuted or inconclusive at quick
    scale (expected failures), zoo measurements that did not hold, errored and skipped."""
    counts = dict.fromkeys(VERDICT_ORDER, 0)
    for c in claims:
        key = count_label(c)
        counts[key] = counts.get(key, 0) + 1
    return counts


def pytest_label(claim: dict) -> str:
    zoo = claim.get("xfail_kind") == "report only"
    return {"xfailed": "XFAIL (zoo measurement, not asserted)" if zoo else
            "XFAIL (expected not to hold at quick scale)",
            "xpassed": "XPASS (zoo measurement held)" if zoo else
            "XPASS (held although expected not to at this scale)"}.get(claim["outcome"], claim["outcome"])


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
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def environment_rows(session: dict, records: list[dict]) -> list[tuple[str, str]]:
    sources = {}
    for record in records:
        sources[record["spec"]["dataset"]] = dict(
            record.get("data_source") or {},
            classes_in_label_order=record.get("class_names"))  # binary: label 1 is the minority
    versions = records[0]["versions"] if records else {}
    rows = [(k, session[k]) for k in ("profiles", "device", "git_commit", "command", "seeds",
                                      "workers", "wall_time_s", "runs_trained", "runs_loaded")
            if k in session]
    rows.append(("library versions", json.dumps({**versions, **session.get("versions", {})}, indent=1)))
    rows.append(("data sources", json.dumps(sources, indent=1)))
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in rows]


def write_report(claims: list[dict], records: list[dict], session: dict, report_root: Path,
                 run_id: str | None = None, comparison: dict | None = None) -> Path:
    """Write ``index.html``, ``claims.json`` and ``results.jsonl``; point ``latest`` at them.

    ``comparison`` (``baseline``, ``fail_on``, ``failed``, ``lines``, ``result``), from
    ``--baseline``, is shown at the top of the page and written to ``comparison.json``.
    Returns the report directory. Files are written atomically; ``latest`` is switched last.
    """
    from jinja2 import Environment

    run_id = run_id or new_run_id()
    out = Path(report_root) / run_id
    out.mkdir(parents=True, exist_ok=True)
    claims = sorted(claims, key=lambda c: (str(c["takeaway"]), c["arm"], c["nodeid"]))
    sections: dict = {}
    for c in claims:
        exploratory = c.get("exploratory")
        c = dict(c, anchor=c["nodeid"].replace("/", "-").replace(":", "-").replace("[", "-").rstrip("]"),
                 verdict_label=verdict_label(c), pytest_label=pytest_label(c),
                 css=verdict_label(c).replace(" ", "-"),
                 badge=exploratory["label"] if exploratory else "",
                 # the evidence file, linked from wherever the report directory is
                 evidence_href=(os.path.relpath(REPO_ROOT / c["evidence"]["path"], out)
                                if c.get("evidence") else ""))
        group = sections.setdefault(str(c["takeaway"]), {"claims": [], "figures": {}})
        group["claims"].append(c)
        for figure in c.get("figures", []):
            group["figures"].setdefault(f"{figure['id']}-{c['profile']}", figure)
    ordered = sorted(sections.items())
    svgs = iter(render_all([f for _, g in ordered for f in g["figures"].values()]))
    rendered = [(t, {"claims": g["claims"],
                     "figures": [{"svg": unique_ids(next(svgs), f"f{t}-{i}-"),
                                  "caption": f.get("caption", "")}
                                 for i, f in enumerate(g["figures"].values())]})
                for t, g in ordered]
    counts = verdict_counts(claims)
    page = Environment(autoescape=True).from_string(TEMPLATE).render(
        run_id=run_id, generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        claims=[c for _, g in rendered for c in g["claims"]], sections=rendered,
        headline=", ".join(f"{n} {name}" for name, n in counts.items() if n),
        environment=environment_rows(session, records), fmt=fmt, comparison=comparison,
        methods_columns=METHOD_CLAIMS, methods_table=methods_table(claims))
    write_text_atomic(out / "index.html", page)
    if comparison:
        atomic_write_json(out / "comparison.json", comparison)
    atomic_write_json(out / "claims.json", [summary_of(c) for c in claims])
    write_text_atomic(out / "results.jsonl", "".join(json.dumps(strict_json(r), sort_keys=True) + "\n" for r in records))
    point_latest(Path(report_root), run_id)
    return out


# The claims of claims/test_methods_under_test.py (test name -> column of the methods table).
METHOD_CLAIM_TESTS = {"test_method_beats_erm_under_imbalance": "beats ERM under imbalance",
                      "test_method_beats_oversampling": "beats oversampling",
                      "test_method_beats_the_strongest_baseline": "beats the strongest baseline",
                      "test_method_is_non_inferior_at_balance": "non-inferior at balance"}
METHOD_CLAIMS = tuple(METHOD_CLAIM_TESTS.values())


def methods_table(claims: list[dict]) -> list[dict]:
    """One row per (method, arm, profile) of the methods-under-test claims: each claim's
    verdict and effect, or '-' where it did not run."""
    rows: dict = {}
    for c in claims:
        if str(c["takeaway"]) != "M" or not c.get("method"):
            continue
        row = rows.setdefault((c["method"], c["arm"], c["profile"]), {})
        column = METHOD_CLAIM_TESTS.get(c["nodeid"].split("::")[-1].split("[")[0])
        if column:
            v = c.get("verdict")
            effect = f" ({fmt(v['effect'])})" if v else ""
            row[column] = {"text": verdict_label(c) + effect, "css": verdict_label(c).replace(" ", "-")}
    return [{"method": m, "arm": a, "profile": p,
             "cells": [cells.get(col, {"text": "-", "css": ""}) for col in METHOD_CLAIMS]}
            for (m, a, p), cells in sorted(rows.items())]


def summary_of(claim: dict) -> dict:
    """The claims.json object of a claim: identity, three-way verdict (or the error), numbers."""
    v = claim.get("verdict")
    base = {"nodeid": claim["nodeid"], "takeaway": claim["takeaway"], "arm": claim["arm"],
            "profile": claim["profile"], "title": claim["title"], "verdict": verdict_label(claim),
            "outcome": claim["outcome"], "exploratory": claim.get("exploratory"),
            "xfail_reason": claim.get("xfail_reason", ""), "xfail_kind": claim.get("xfail_kind", ""),
            "evidence": claim.get("evidence"), "record_keys": claim.get("record_keys", []),
            "method": claim.get("method", "")}
    if v is None:
        return dict(base, error=claim.get("error", ""))
    return dict(base, statistic=v["statistic"], effect_unit=v.get("effect_unit", ""),
                p_value=v["p_value"], effect=v["effect"], ci=v["ci"], alpha=v["alpha"],
                reason=v.get("reason", ""), minimal_detectable_effect=v.get("mde"),
                seeds_needed=v.get("seeds_needed"), gate=v.get("gate"), seeds=v["seeds"],
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
