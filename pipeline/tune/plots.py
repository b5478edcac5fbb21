"""Sweep plots for the parent MLflow run: objective per trial over epochs, and against each
swept value (PNG bytes)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def objective_curves_png(rows: list[dict], objective: str) -> bytes:
    """One line per trial: the objective at every epoch; dashed for trials stopped early."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        if not row["history"]:
            continue
        xs, ys = zip(*row["history"], strict=True)
        ax.plot(xs, ys, marker="o", linestyle="--" if row["status"] != "completed" else "-",
                label=f"{row['trial_id']} ({row['status']})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    ax.legend(fontsize=6)
    ax.set_title("objective per trial")
    return _png(fig)


def objective_vs_values_png(rows: list[dict], objective: str) -> bytes:
    """A scatter panel per swept key: each trial's best objective against its sampled value."""
    keys = sorted({k for row in rows for k in row["values"]})
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.5),
                             squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        xs = [row["values"][key] for row in rows if key in row["values"]]
        ys = [row["objective"] for row in rows if key in row["values"]]
        ax.scatter(xs, ys)
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
    fig.suptitle("objective against each swept value")
    return _png(fig)
