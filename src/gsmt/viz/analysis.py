"""Pictures of `gsmt analyze`: false-positive profile, its pie, mAP by instance size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from gsmt.viz.common import (
    DPI,
    save_figure,
)

ERROR_COLORS = {
    "true_positive": "#2ca02c",
    "double_detection": "#9467bd",
    "wrong_label": "#1f77b4",
    "localization": "#ff7f0e",
    "confusion": "#d62728",
    "background": "#7f7f7f",
}
ANALYSIS_PICTURES = {"profile": "fp_profile.png", "pie": "fp_pie.png", "bins": "map_bins.png"}
_BIN_COLORS = {"length": "#f0027f", "coverage": "#386cb0"}
_BIN_RANGES = {
    "length": ("(0, 3] s", "(3, 6] s", "(6, 12] s", "(12, 18] s", "> 18 s"),
    "coverage": ("(0, 2]%", "(2, 4]%", "(4, 6]%", "(6, 8]%", "> 8%"),
}


def _type_name(key: str) -> str:
    return key.replace("_", " ")


def fp_profile_figure(analysis: dict) -> Figure:
    """Stacked bars of the six prediction types per block of G predictions (DETAD's FP profile)."""
    g, profile = analysis["num_gt"], analysis["profile"]
    x = np.arange(1, len(profile) + 1)
    fig = Figure(figsize=(9.0, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    bottom = np.zeros(len(profile))
    for key, color in ERROR_COLORS.items():
        share = np.array([100.0 * block[key] / g for block in profile])
        ax.bar(x, share, bottom=bottom, color=color, edgecolor="white", linewidth=0.5,
               label=_type_name(key))
        bottom += share
    ax.set_xticks(x)
    ax.set_xticklabels([f"{k}G" for k in x])
    ax.set_xlim(0.4, len(profile) + 0.6)
    ax.set_ylim(0.0, 100.0)
    ax.set_xlabel(f"block of G = {g:,} predictions, by descending score")
    ax.set_ylabel("share of the block (%)")
    ax.set_title(f"prediction types of the top {analysis['num_predictions']:,} predictions "
                 f"(tIoU {analysis['tiou']:g})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if not analysis["num_predictions"]:
        ax.text(0.5, 0.5, "no predictions", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontstyle="italic")
    # listed top to bottom as stacked
    handles = [Patch(facecolor=c, label=_type_name(k)) for k, c in reversed(ERROR_COLORS.items())]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def fp_pie_figure(analysis: dict) -> Figure:
    """Pie of the false-positive types among the top G predictions (true positives left out)."""
    block = analysis["profile"][0]
    errors = [k for k in ERROR_COLORS if k != "true_positive"]
    counts = np.array([block[k] for k in errors], dtype=np.float64)
    total = int(counts.sum())
    fig = Figure(figsize=(6.8, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    shown = counts > 0
    if total:
        ax.pie(counts[shown], colors=[ERROR_COLORS[k] for k, s in zip(errors, shown) if s], startangle=90,
               counterclock=False, autopct=lambda p: f"{p:.0f}%" if p >= 4 else "",
               wedgeprops={"edgecolor": "white", "linewidth": 1}, textprops={"color": "white", "fontsize": 9})
    else:
        ax.text(0.5, 0.5, "no false positives", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontstyle="italic")
        ax.set_axis_off()
    ax.set_aspect("equal")
    ax.set_title(f"false positives among the top G = {analysis['num_gt']:,} predictions\n"
                 f"{total:,} errors, {block['true_positive']:,} true positives (tIoU {analysis['tiou']:g})",
                 fontsize=10)
    handles = [Patch(facecolor=ERROR_COLORS[k],
                     label=f"{_type_name(k)}: {block[k]} ({100 * block[k] / total if total else 0:.1f}%)")
               for k in errors]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig


def map_bins_figure(analysis: dict) -> Figure:
    """Average mAP per ground-truth length bin and coverage bin, bars (DETAD's sensitivity plot)."""
    fig = Figure(figsize=(10.0, 4.2), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    thr = analysis["mAP_tiou"]
    span = f"{thr[0]:g}" if len(thr) == 1 else f"{thr[0]:g}:{thr[-1]:g}"
    base = 100.0 * analysis["average_mAP"]
    values = [v["average_mAP"] for key in ("by_length", "by_coverage") for v in analysis[key].values()]
    top = max([100.0 * v for v in values if v is not None] + [base, 1.0])
    for ax, kind in zip(axes, ("length", "coverage")):
        bins = analysis[f"by_{kind}"]
        names = list(bins)
        x = np.arange(len(names))
        heights = [100.0 * bins[b]["average_mAP"] if bins[b]["average_mAP"] is not None else 0.0 for b in names]
        ax.bar(x, heights, color=_BIN_COLORS[kind], width=0.7)
        for xi, b, h in zip(x, names, heights):
            text = "no GT" if bins[b]["average_mAP"] is None else f"{h:.1f}"
            ax.text(xi, h + 0.015 * top, text, ha="center", va="bottom", fontsize=8,
                    color="0.4" if text == "no GT" else "black")
        ax.axhline(base, color="black", linestyle="--", linewidth=1.0, label=f"all ground truth: {base:.1f}")
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b}\n{r}\nn={bins[b]['instances']}" for b, r in zip(names, _BIN_RANGES[kind])],
                           fontsize=8)
        ax.set_title(f"by ground-truth {kind}" + (" (length / video duration)" if kind == "coverage" else ""),
                     fontsize=10)
        ax.set_xlabel(f"{kind} bin")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel(f"average mAP (%), tIoU {span}")
    axes[0].set_ylim(0.0, min(100.0, 1.2 * top) if top < 100.0 else 105.0)
    fig.suptitle("mAP by ground-truth bin (predictions matching other bins' ground truth left out)", fontsize=11)
    return fig


def plot_analysis(out_dir: str | Path, analysis: dict) -> dict[str, Path]:
    """Write the profile, pie and bin pictures of an analysis.json document into `out_dir`."""
    out = Path(out_dir)
    figures = {"profile": fp_profile_figure, "pie": fp_pie_figure, "bins": map_bins_figure}
    return {key: save_figure(make(analysis), out / ANALYSIS_PICTURES[key]) for key, make in figures.items()}
