"""Markdown table of call-level results from ``evaluate-calls`` reports, one row per report and corpus.

    python -m stream.call_table before=artifacts/eval-heldout/report.json after=artifacts/eval-heldout-new/report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = ("run", "calls", "corpus", "escalation recall", "calm flagged", "other non-escalation flagged",
           "false alarms / h calm", "s to alert (median, p90)", "double opens", "segment emotion UA", "segment sentiment UA")


def _f(x, nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _count(n: int | None, d: int) -> str:
    return "–" if n is None else f"{round(n * d)}/{d}"


def rows(name: str, report: dict) -> list[list[str]]:
    """The report's overall line, then one per corpus."""
    out = []
    for corpus, s in [("all", report["overall"]), *report["by_corpus"].items()]:
        quiet = {k: v for k, v in s["by_type"].items() if k not in ("escalation", "calm")}
        flagged = sum(v["flagged"] for v in quiet.values())
        other = sum(v["calls"] for v in quiet.values())
        seg = s["segments"]
        out.append([name, Path(report["dir"]).name, corpus, _count(s["escalation_recall"], s["escalations"]),
                    _count(s["calm_flagged_share"], s["calm_calls"]), f"{flagged}/{other}" if other else "–",
                    _f(s["false_alarms_per_hour_calm"], 1), f"{_f(s['seconds_to_alert_median'], 0)}, {_f(s['seconds_to_alert_p90'], 0)}",
                    str(s["double_opens"]), _f(seg["emotion_balanced_accuracy"]), _f(seg["sentiment_balanced_accuracy"])])
    return out


def table(named: list[tuple[str, dict]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, report in named:
        lines += ["| " + " | ".join(r) + " |" for r in rows(name, report)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", help="NAME=path/to/report.json (or just the path)")
    args = p.parse_args(argv)
    named = []
    for spec in args.reports:
        name, _, path = spec.rpartition("=")
        named.append((name or Path(path).parent.name, json.loads(Path(path).read_text())))
    print(table(named))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
