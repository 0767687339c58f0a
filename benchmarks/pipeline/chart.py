"""The pipeline benchmark's chart: capacity per build, and p50 / p99 / p99.9 reading-to-alarm latency
per build against the aims (100 ms p50, 500 ms p99), both from one run."""

from __future__ import annotations

import argparse
from pathlib import Path

AIMS_MS = ((100, "p50 aim 100 ms"), (500, "p99 aim 500 ms"))
OFFERED = "offered load"


def chart(results: dict, paths: list[Path], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    names = list(results)
    x = np.arange(len(names))
    fig, (cap, lat) = plt.subplots(1, 2, figsize=(13, 5))

    values = [results[n]["readings_per_s"] for n in names]
    bars = cap.bar(x, values, color=["#2a6f97" if n == "wardwatch" else "#8fb8cf" for n in names])
    cap.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
    cap.axhline(args.patients * 3, color="#555", ls=":", lw=1)
    cap.annotate(f"{OFFERED} {args.patients * 3:,}/s", (x[-1] + 0.4, args.patients * 3), ha="right", va="bottom",
                 fontsize=8, color="#555")
    cap.set_title("capacity: readings/s drained from a backlog")
    cap.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    cap.set_xticks(x, names, rotation=15)

    w = 0.27
    for k, (key, label, color) in enumerate((("p50_ms", "p50", "#7fb069"), ("p99_ms", "p99", "#e6aa68"),
                                             ("p999_ms", "p99.9", "#c44536"))):
        vals = [results[n][key] or 0 for n in names]
        lat.bar(x + (k - 1) * w, vals, w, label=label, color=color)
    for ms, label in AIMS_MS:
        lat.axhline(ms, color="#333", ls="--", lw=1)
        lat.annotate(label, (x[-1] + 0.45, ms), ha="right", va="bottom", fontsize=8)
    for i, n in enumerate(names):
        if results[n]["p50_ms"] is None:  # no alarm after the warm-up (or the build fell too far behind)
            lat.annotate("no alarm\ntimed", (i, 100), ha="center", va="bottom", fontsize=8, color="#c44536")
    lat.set_yscale("log")
    top = max([results[n][k] or 0 for n in names for k in ("p50_ms", "p99_ms", "p999_ms")] + [AIMS_MS[-1][0]])
    lat.set_ylim(top=top * 2)  # room above the highest aim for its label and the legend
    # 40, not 4 x 10^1; between the decades only 2, 3 and 5 x 10^k, so the labels do not crowd.
    lat.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    lat.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:,.0f}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 3, 5) else ""))
    lat.set_ylabel("ms (log scale)")
    lat.set_title(f"reading -> alarm latency, after a {args.warmup_seconds:g} s warm-up")
    lat.set_xticks(x, [f"{n}\n(on {results[n]['latency_at']})" for n in names], rotation=15, fontsize=8)
    lat.legend(fontsize=8, loc="upper left", ncol=3)
    fig.suptitle(f"{args.patients:,} patients x 3 vitals at 1 Hz, one run (only ratios within a run compare)",
                 fontsize=10)
    fig.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)
