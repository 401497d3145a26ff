"""PNG plots of a call-level evaluation: one call's timeline (labelled segments, scores, alerts) and the
threshold sweep. matplotlib is optional (the ``train`` and ``test`` extras have it): without it, ``plots_available``
says why and no file is written."""

from __future__ import annotations

from pathlib import Path

EMOTION_COLOURS = {"angry": "#d62728", "disgust": "#8c564b", "fearful": "#9467bd", "sad": "#1f77b4", "bored": "#7f7f7f",
                   "neutral": "#bbbbbb", "calm": "#98df8a", "happy": "#2ca02c", "surprised": "#ff7f0e"}
DPI = 110
GAP_BREAK_S = 1.5


def plots_available() -> str | None:
    """None when plots can be drawn, else the reason they cannot."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed: no PNG plots (pip install 'callpulse[test]' or matplotlib)"
    return None


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_call(call: dict, result: dict, rules: set[str], path: Path) -> Path:
    """Customer sentiment and anger per step over labelled segment bands of both legs, with alert markers."""
    plt = _pyplot()
    fig, (ax, lanes) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    cust = [e for e in result["timeline"] if e.get("leg") == "customer" and e.get("sentiment")]
    xs, ys = [], []
    for e in cust:                                    # a gap in the customer's speech breaks the line
        if xs and float(e["t"]) - xs[-1] > GAP_BREAK_S:
            xs, ys = xs + [float("nan")], ys + [float("nan")]
        xs, ys = xs + [float(e["t"])], ys + [float(e["sentiment"])]
    ax.plot(xs, ys, ".-", color="#333333", lw=1, label="customer sentiment")
    angry = [(float(e["t"]), float(e["emotion_score"])) for e in cust if e.get("emotion") == "angry"]
    if angry:
        ax.plot(*zip(*angry), "v", color=EMOTION_COLOURS["angry"], label="top emotion angry (its probability)")
    for a in result["alerts"]:
        if a["state"] == "open":
            ax.axvline(float(a["t"]), color="#d62728" if a["rule"] in rules else "#999999", ls="--", lw=1.2)
            ax.text(float(a["t"]), 1.02, a["rule"], rotation=90, va="bottom", ha="right", fontsize=7)
    if call.get("first_angry_customer_s") is not None:
        ax.axvline(call["first_angry_customer_s"], color="#d62728", lw=0.6, alpha=0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("sentiment (-1..1)")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"{call['call_id']} ({call.get('type', '?')}, {call.get('corpus', '')}): alerts dashed", fontsize=9)
    for row, leg in enumerate(("agent", "customer")):
        for s in (s for s in call["segments"] if s["leg"] == leg):
            lanes.broken_barh([(s["start_s"], s["end_s"] - s["start_s"])], (row + 0.1, 0.8), color=EMOTION_COLOURS.get(s["emotion"], "#cccccc"))
    lanes.set_yticks([0.5, 1.5], ["agent", "customer"])
    lanes.set_xlabel("call time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in EMOTION_COLOURS.values()]
    lanes.legend(handles, EMOTION_COLOURS.keys(), ncol=9, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_sweep(sweep: dict, path: Path) -> Path:
    """Escalation recall against calm calls flagged (and false alarms per hour), one point per threshold."""
    plt = _pyplot()
    pts = [p for p in sweep["points"] if p["escalation_recall"] is not None and p["calm_flagged_share"] is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    panels = ((a, ("calm_flagged_share", "non_escalation_flagged_share"), "share of calls flagged"),
              (b, ("false_alarms_per_hour_calm",), "false alarms per hour of calm audio"))
    for ax, keys, label in panels:
        for key in keys:
            xs, ys = [p[key] for p in pts], [p["escalation_recall"] for p in pts]
            ax.plot(xs, ys, "o-", ms=4, label=key.replace("_flagged_share", " calls"))
            seen = set()
            for p, x, y in zip(pts, xs, ys):
                if (x, y) not in seen:                  # one label per distinct point
                    ax.annotate(f"{p['threshold']:g}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
                    seen.add((x, y))
        ax.set_xlabel(label)
        ax.set_ylabel("escalation recall")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(left=-0.02 * max(1.0, ax.get_xlim()[1]))
        ax.grid(alpha=0.3)
    a.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"threshold of {sweep['rule']} ({sweep['metric']} {sweep['op']} t; configured {sweep['configured_threshold']:g})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
