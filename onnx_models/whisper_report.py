"""Markdown tables of the Whisper layer probes (`whisper_probe` JSON files) for the model card.

    python -m onnx_models.whisper_report onnx_models/reports/whisper_probe_layers.json onnx_models/reports/whisper_probe_l1-5.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .whisper_features import PROBE_CORPORA
from .whisper_probe import NORMS, VIEWS

LOCO_NAMES = {"emovo": "→ EMOVO", "ravdess": "→ RAVDESS", "emodb": "→ EmoDB"}


def merged(paths: list[Path]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for p in paths:
        out.update(json.loads(Path(p).read_text())["results"])
    return out


def layer_table(results: dict[str, dict], level: str = "clip") -> str:
    """One row per view: per normalisation, speaker folds (RAVDESS, EMOVO) and leave-one-corpus-out mean, clean
    and telephone, emotion UA."""
    norms = [n for n in NORMS if any(f"{v}/{n}" in results for v in VIEWS)]
    head = "| layer | " + " | ".join(f"{n}: RAVDESS / EMOVO (tel) | {n}: LOCO mean (tel)" for n in norms) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(norms))]
    for view in VIEWS:
        cells = []
        for n in norms:
            r = results.get(f"{view}/{n}")
            if r is None:
                cells += ["", ""]
                continue
            s = r["summary"]
            cells.append(f"{s[f'ravdess clean {level} ua']:.3f} / {s[f'emovo clean {level} ua']:.3f} "
                         f"({s[f'ravdess telephone {level} ua']:.3f} / {s[f'emovo telephone {level} ua']:.3f})")
            cells.append(f"{s[f'loco mean clean {level} ua']:.3f} ({s[f'loco mean telephone {level} ua']:.3f})")
        if any(cells):
            lines.append(f"| {view} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(results: dict[str, dict], view: str) -> str:
    """One view, every normalisation: UA / macro-F1 per protocol, clips and windows, clean and telephone."""
    lines = ["| normalisation | level | channel | RAVDESS UA / F1 | EMOVO UA / F1 | sentiment RAVDESS / EMOVO | "
             + " | ".join(f"{LOCO_NAMES[d]} UA / F1" for d in PROBE_CORPORA) + " | LOCO mean UA / F1 | LOCO sentiment mean |",
             "|" + "---|" * (8 + len(PROBE_CORPORA))]
    for n in NORMS:
        r = results.get(f"{view}/{n}")
        if r is None:
            continue
        s = r["summary"]
        for level in ("clip", "window"):
            for kind in ("clean", "telephone"):
                k = f"{kind} {level}"
                loco = [f"{s[f'loco {d} {k} ua']:.3f} / {s[f'loco {d} {k} f1']:.3f}" for d in PROBE_CORPORA]
                lines.append(f"| {n} | {level} | {kind} | {s[f'ravdess {k} ua']:.3f} / {s[f'ravdess {k} f1']:.3f} | "
                             f"{s[f'emovo {k} ua']:.3f} / {s[f'emovo {k} f1']:.3f} | {s[f'ravdess {k} sent_ua']:.3f} / {s[f'emovo {k} sent_ua']:.3f} | "
                             + " | ".join(loco) + f" | {s[f'loco mean {k} ua']:.3f} / {s[f'loco mean {k} f1']:.3f} | {s[f'loco mean {k} sent_ua']:.3f} |")
    return "\n".join(lines)


def cost_table(cost: dict[str, dict]) -> str:
    """`whisper_cost` JSON: size and CPU / wall ms per 2 s window, batch 1 and 32."""
    lines = ["| graph | size | CPU ms / window, batch 1 | batch 32 | wall ms, batch 1 | batch 32 | load average |", "|---|---|---|---|---|---|---|"]
    for name, r in cost.items():
        lines.append(f"| {name} | {r['bytes'] / 1e6:.1f} MB | {r['batch1']['cpu_ms']} | {r['batch32']['cpu_ms']} | "
                     f"{r['batch1']['wall_ms']} | {r['batch32']['wall_ms']} | {r['load_average_1min']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", type=Path, nargs="+")
    p.add_argument("--detail", nargs="*", default=["L1-5"], help="views to show in full")
    p.add_argument("--cost", type=Path, default=None, help="a whisper_cost JSON to tabulate too")
    args = p.parse_args(argv)
    results = merged(args.reports)
    print(layer_table(results), end="\n\n")
    for view in args.detail:
        if any(k.startswith(view + "/") for k in results):
            print(f"{view}:\n\n{detail_table(results, view)}", end="\n\n")
    if args.cost:
        print(cost_table(json.loads(args.cost.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
