"""The distillation table: teacher (Whisper probe), 0.6.0, and the student with and without the teacher, on the
same held-out speakers; and the decision rule for shipping the student.

    python -m onnx_models.distill_report onnx_models/reports/distill --out onnx_models/reports/distill_summary.json

Reads `distill`'s run files (``{file_stem(task)}_{arm}_e{epochs}_s{seed}.json``), the teacher's per-task scores
(`whisper_probe_l1-5.json`, ``L1-5/none``) and 0.6.0's (`eval_cnn2d_x3_speed0.1_plus_emodb.json`). Only tasks
with both arms are compared. Prints markdown tables and writes the JSON summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .distill_targets import TASKS

REPORTS = Path(__file__).with_name("reports")
TEACHER = REPORTS / "whisper_probe_l1-5.json"
SHIPPED = REPORTS / "eval_cnn2d_x3_speed0.1_plus_emodb.json"
BANDS = ("clean", "telephone")
# (name, level, head, metric) of each compared number
METRICS = (("clip UA", "clip", "emotion", "ua"), ("clip F1", "clip", "emotion", "macro_f1"),
           ("window UA", "window", "emotion", "ua"), ("window F1", "window", "emotion", "macro_f1"),
           ("sentiment clip UA", "clip", "sentiment_head", "ua"))
SHIP_MEAN_GAIN = 0.02      # KD must add this much clip UA on average over the cells ...
SHIP_WORST_DROP = -0.01    # ... and lose no more than this in any cell and band


def test_cells(task: str) -> list[str]:
    """The scored test sets of a task: both corpora for a speaker fold, the left-out corpus otherwise."""
    return ["ravdess", "emovo"] if TASKS[task][0] == "fold" else [task.split("->")[1]]


def value(scores: dict, corpus: str, band: str, level: str, head: str, metric: str) -> float:
    return float(scores[f"{corpus}/{band}"][level][head][metric])


def collect(runs: list[dict], teacher: dict | None, shipped: dict | None) -> dict:
    """Per (task, test corpus): every model's numbers, and KD minus plain, for the tasks that have both arms
    with the same epochs and seed."""
    by = {(r["task"], r["arm"], r["epochs"], r["seed"]): r for r in runs}
    teacher_tasks = {t["task"]: t["scores"] for t in teacher["results"]["L1-5/none"]["tasks"]} if teacher else {}
    shipped_tasks = ({f"fold{k}": f for k, f in enumerate(shipped["folds"])} | shipped["cross"]) if shipped else {}
    cells = []
    for (task, arm, epochs, seed), kd in sorted(by.items()):
        plain = by.get((task, "plain", epochs, seed))
        if arm != "kd" or plain is None:
            continue
        for corpus in test_cells(task):
            cell: dict = {"task": task, "test": corpus, "epochs": epochs, "seed": seed, "models": {}}
            sources = {"teacher": teacher_tasks.get(task), "0.6.0": shipped_tasks.get(task), "plain": plain["scores"], "kd": kd["scores"]}
            for model, scores in sources.items():
                if scores is not None:
                    cell["models"][model] = {f"{band} {name}": round(value(scores, corpus, band, lvl, head, m), 4)
                                             for band in BANDS for name, lvl, head, m in METRICS}
            cell["kd_minus_plain"] = {k: round(cell["models"]["kd"][k] - cell["models"]["plain"][k], 4) for k in cell["models"]["kd"]}
            cells.append(cell)
    return {"cells": cells, "decision": decide(cells)}


def decide(cells: list[dict]) -> dict:
    """The shipping rule, fixed before the runs: mean clip-UA gain over cells (both bands) >= 0.02, and no cell
    and band losing more than 0.01."""
    if not cells:
        return {"ship": False, "why": "no task with both arms"}
    gains = {b: [c["kd_minus_plain"][f"{b} clip UA"] for c in cells] for b in BANDS}
    mean_gain = float(np.mean([g for b in BANDS for g in gains[b]]))
    worst = float(min(g for b in BANDS for g in gains[b]))
    ship = mean_gain >= SHIP_MEAN_GAIN and worst >= SHIP_WORST_DROP
    return {"ship": ship, "mean_clip_ua_gain": round(mean_gain, 4), "worst_cell_gain": round(worst, 4),
            "mean_gain_per_band": {b: round(float(np.mean(gains[b])), 4) for b in BANDS},
            "rule": f"mean gain >= {SHIP_MEAN_GAIN} and every cell >= {SHIP_WORST_DROP}"}


def markdown(summary: dict) -> str:
    cells = summary["cells"]
    models = ("teacher", "0.6.0", "plain", "kd")
    lines = ["| task | test | " + " | ".join(f"{m}: clean (tel.)" for m in models) + " | KD − plain: clean (tel.) |",
             "|---|---|" + "---|" * (len(models) + 1)]

    def pair(d: dict | None, name: str) -> str:
        return "–" if d is None else f"{d[f'clean {name}']:.3f} ({d[f'telephone {name}']:.3f})"
    for c in cells:
        lines.append(f"| {c['task']} | {c['test']} | " + " | ".join(pair(c["models"].get(m), "clip UA") for m in models)
                     + f" | {c['kd_minus_plain']['clean clip UA']:+.3f} ({c['kd_minus_plain']['telephone clip UA']:+.3f}) |")
    lines += ["", "| task | test | " + " | ".join(f"KD − plain {name}: clean (tel.)" for name, *_ in METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for c in cells:
        d = c["kd_minus_plain"]
        lines.append(f"| {c['task']} | {c['test']} | " + " | ".join(f"{d[f'clean {n}']:+.3f} ({d[f'telephone {n}']:+.3f})" for n, *_ in METRICS) + " |")
    means = {m: {k: float(np.mean([c["models"][m][k] for c in cells if m in c["models"]])) for k in cells[0]["models"]["kd"]}
             for m in models if all(m in c["models"] for c in cells)} if cells else {}
    if means:
        lines += ["", "| mean over cells | " + " | ".join(f"{m}" for m in means) + " |", "|---|" + "---|" * len(means)]
        for name, *_ in METRICS:
            lines.append(f"| {name} | " + " | ".join(pair(means[m], name) for m in means) + " |")
    d = summary["decision"]
    lines += ["", f"Decision ({d.get('rule', '')}): mean clip-UA gain {d.get('mean_clip_ua_gain')}, worst cell "
              f"{d.get('worst_cell_gain')} → {'ship the KD student' if d['ship'] else 'do not ship'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, help="folder of distill run JSON files")
    p.add_argument("--teacher", type=Path, default=TEACHER)
    p.add_argument("--shipped", type=Path, default=SHIPPED)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    runs = [json.loads(f.read_text()) for f in sorted(args.runs.glob("*.json"))]
    summary = collect(runs, json.loads(args.teacher.read_text()), json.loads(args.shipped.read_text()))
    args.out.write_text(json.dumps(summary, indent=1))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
