"""Confusion matrices and learning curves as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def confusion_png(cm: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_results(results: dict, out: Path, arch: str) -> None:
    for corpus in ("ravdess", "emovo"):
        for kind in ("clean", "telephone"):
            cms = [np.array(f[f"{corpus}/{kind}"]["clip"]["confusion"]) for f in results["folds"]]
            labels = results["folds"][0][f"{corpus}/{kind}"]["labels"]
            confusion_png(sum(cms), labels, f"{arch}: {corpus}, {kind}, held-out speakers (3 folds pooled), clips",
                          out / f"confusion_{arch}_{corpus}_{kind}.png")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for k, h in enumerate(results["histories"]):
        ax.plot(h["epoch"], h["loss"], label=f"fold {k}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{arch}: learning curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"learning_{arch}.png", dpi=110)
    plt.close(fig)
