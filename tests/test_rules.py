import os
import time
from pathlib import Path

import pytest

from workers.evidence import CallEvidence
from workers.rules import RuleEngine, RuleError, RuleSet

DEFAULT = Path(__file__).resolve().parents[1] / "workers" / "default_rules.yaml"


def one(text):
    return RuleSet.from_yaml("rules:\n" + text, "test.yaml")


BASE = """
  - name: anger
    severity: warning
    leg: customer
    metric: customer_angry
    op: ">"
    threshold: 0.6
    for_s: 10
    clear_threshold: 0.4
    clear_for_s: 3
    cooldown_s: 20
"""


def run(engine, series, call="c1"):
    """series: list of metric dicts, one per 1 s step starting at t=1. Returns [(t, rule, state)]."""
    out = []
    for i, m in enumerate(series):
        for a in engine.evaluate(call, float(i + 1), 1000.0 + i, m):
            out.append((i + 1, a.rule, a.state))
    return out


@pytest.mark.parametrize("text,fragment", [
    ("  - name: x\n    severity: warning\n    metric: m\n    op: '!='\n    threshold: 1\n", "rule 'x' (#1): op"),
    ("  - name: x\n    severity: warning\n    metric: m\n    op: '>'\n", "threshold: Field required"),
    ("  - name: x\n    severity: urgent\n    metric: m\n    op: '>'\n    threshold: 1\n", "severity"),
    ("  - name: x\n    severity: info\n    metric: m\n    op: '>'\n    threshold: 1\n    for_s: -5\n", "for_s: Input should be greater than or equal to 0"),
    ("  - name: x\n    severity: info\n    metric: m\n    op: '>'\n    threshold: 1\n    aggregate: sum_over\n", "needs within_s > 0"),
    ("  - name: x\n    severity: info\n    metric: m\n    op: '>'\n    threshold: 1\n    clear_threshold: 2\n", "clear side"),
    ("  - name: x\n    severity: info\n    metric: m\n    op: '>'\n    threshold: 1\n    colour: red\n", "colour: Extra inputs"),
    (BASE + BASE, "rule 'anger' (#2): duplicate name"),
])
def test_invalid_rules_are_reported_with_file_rule_and_field(text, fragment):
    with pytest.raises(RuleError) as exc:
        one(text)
    assert "test.yaml" in str(exc.value) and fragment in str(exc.value)


def test_not_yaml_and_wrong_shape():
    with pytest.raises(RuleError, match="not valid YAML"):
        RuleSet.from_yaml("rules: [", "f.yaml")
    with pytest.raises(RuleError, match="a list under 'rules'"):
        RuleSet.from_yaml("- a\n- b\n", "f.yaml")


def test_duration_hysteresis_and_cooldown():
    e = RuleEngine(one(BASE))
    series = [{"customer_angry": 0.9}] * 9 + [{"customer_angry": 0.5}] + [{"customer_angry": 0.9}] * 12   # interrupted at t=10
    series += [{"customer_angry": 0.5}] * 5          # between thresholds: stays open (hysteresis)
    series += [{"customer_angry": 0.1}] * 3          # clears after 3 s below 0.4
    series += [{"customer_angry": 0.9}] * 30         # cooldown 20 s, then 10 s to reopen
    got = run(e, series)
    assert got == [(20, "anger", "open"), (30, "anger", "clear"), (59, "anger", "open")]


def test_missing_metric_neither_advances_nor_resets():
    e = RuleEngine(one(BASE))
    series = [{"customer_angry": 0.9}] * 5 + [{}] * 20 + [{"customer_angry": 0.9}] * 5
    assert run(e, series) == [(30, "anger", "open")]


def test_no_alert_storm_one_open_alert_per_rule_and_call():
    e = RuleEngine(one(BASE))
    got = run(e, [{"customer_angry": 0.95}] * 100)
    assert got == [(10, "anger", "open")]
    assert run(e, [{"customer_angry": 0.95}] * 15, call="c2") == [(10, "anger", "open")]


def test_sum_over_and_drop_over():
    rules = one("""
  - name: overtalk
    severity: info
    metric: overtalk_step_s
    aggregate: sum_over
    within_s: 30
    op: ">"
    threshold: 5
    clear_threshold: 2
  - name: drop
    severity: critical
    metric: s
    aggregate: drop_over
    within_s: 60
    op: ">"
    threshold: 0.6
    clear_threshold: 0.3
""")
    e = RuleEngine(rules)
    series = [{"overtalk_step_s": 0.0, "s": 0.5}] * 10 + [{"overtalk_step_s": 0.8, "s": 0.5}] * 7      # 5.6 s of overtalk in 7 s
    series += [{"overtalk_step_s": 0.0, "s": 0.5 - 0.13 * k} for k in range(1, 8)]                    # s falls 0.5 -> -0.41
    series += [{"overtalk_step_s": 0.0, "s": 0.5 - 0.13 * 7}] * 60
    got = run(e, series)
    assert (17, "overtalk", "open") in got
    assert (22, "drop", "open") in got            # drop 0.65 > 0.6 at the 5th fall step
    opened = [g for g in got if g[2] == "open"]
    assert len(opened) == 2
    clears = {g[1]: g[0] for g in got if g[2] == "clear"}
    assert clears["overtalk"] == 45               # two 0.8 s steps (1.6 s <= 2) left in the 30 s window
    assert clears["drop"] == 81                   # the window's maximum fell to -0.15: drop 0.26 <= 0.3


def test_state_round_trip_mid_alert_does_not_reopen():
    e = RuleEngine(one(BASE))
    run(e, [{"customer_angry": 0.9}] * 12)
    state = e.export_state("c1")
    e2 = RuleEngine(one(BASE))
    e2.restore_state("c1", state)
    assert e2.open_alerts("c1") == e.open_alerts("c1") != []
    assert e2.evaluate("c1", 13.0, 0, {"customer_angry": 0.9}) == []


def test_hot_reload_by_mtime_keeps_old_rules_on_error(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n" + BASE)
    e = RuleEngine(RuleSet.load(f), str(f))
    assert not e.maybe_reload()
    f.write_text("rules:\n" + BASE.replace("threshold: 0.6", "threshold: 0.8"))
    os.utime(f, (time.time() + 5, time.time() + 5))
    assert e.maybe_reload() and e.rules.rules[0].threshold == 0.8
    f.write_text("rules:\n  - name: broken\n")
    os.utime(f, (time.time() + 10, time.time() + 10))
    assert not e.maybe_reload() and e.rules.rules[0].threshold == 0.8


def scripted(kind: str) -> list[dict]:
    """Per-step metrics of scripted call situations, as the pipeline produces them (evidence added by
    ``with_evidence``); a step without customer_ metrics is a step where the customer did not speak."""
    quiet = {"silence_run_s": 0.0, "overtalk_step_s": 0.0}
    calm = {**quiet, "customer_sentiment": 0.2, "customer_sentiment_avg": 0.2, "customer_angry": 0.05}
    angry = {**quiet, "customer_sentiment": -0.7, "customer_sentiment_avg": -0.3, "customer_angry": 0.85}
    if kind == "angry":          # three angry turns of 5 s, 2 s apart, then calm
        return [calm] * 10 + ([angry] * 5 + [quiet] * 2) * 3 + [calm] * 40
    if kind == "silence":        # 35 s on hold
        return [calm] * 5 + [{"silence_run_s": float(k + 1), "overtalk_step_s": 0.0} for k in range(35)] + [calm] * 5
    if kind == "overtalk":
        return [calm] * 5 + [{**calm, "overtalk_step_s": 0.9}] * 7 + [calm] * 40
    if kind == "recovery":       # sentiment falls hard, then recovers
        fall = [{**quiet, "customer_sentiment": s, "customer_sentiment_avg": s, "customer_angry": 0.2} for s in (0.4, 0.25, 0.1, -0.05, -0.25, -0.45, -0.65)]
        low = [{**quiet, "customer_sentiment": -0.65, "customer_sentiment_avg": -0.65, "customer_angry": 0.2}] * 25
        return [{**calm, "customer_sentiment_avg": 0.4}] * 5 + fall + low + [calm] * 80
    raise ValueError(kind)


# angry: anger needs evidence from two turns, so it opens as the second angry turn starts (t=18); negativity builds
# more slowly; both clear once 10 s of calm have drained the evidence under 0.5.
EXPECTED_ANGRY = [(18, "customer_anger", "open"), (25, "customer_negative", "open"), (48, "customer_negative", "clear"), (52, "customer_anger", "clear")]
# recovery: the sharp fall opens sentiment_drop; the long low stretch builds negativity evidence; both clear on recovery.
EXPECTED_RECOVERY = [(10, "sentiment_drop", "open"), (24, "customer_negative", "open"), (47, "sentiment_drop", "clear"), (57, "customer_negative", "clear")]


def with_evidence(series: list[dict], cfg) -> list[dict]:
    """Add the evidence metrics the pipeline computes from the same steps (workers.evidence)."""
    ev, out = CallEvidence(("agent", "customer")), []
    rest = {k: 0.0 for k in ("calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")}
    for i, m in enumerate(series):
        cust = {"speech": 0.0, "pause": [1.0, 1.0, 1.0]}
        if "customer_angry" in m:
            cust = {"speech": 0.9, "pause": [0.0, 0.0, 0.0], "s": m["customer_sentiment"], "e": {"angry": m["customer_angry"], **rest}}
        out.append({**m, **ev.step(float(i + 1), {"agent": None, "customer": cust}, cfg, 1.0)})
    return out


@pytest.mark.parametrize("kind,expected", [
    ("angry", EXPECTED_ANGRY),
    ("silence", [(36, "long_silence", "open"), (41, "long_silence", "clear")]),
    ("overtalk", [(11, "overtalk", "open"), (40, "overtalk", "clear")]),
    ("recovery", EXPECTED_RECOVERY),
])
def test_default_rules_raise_exactly_the_expected_alerts(kind, expected):
    rules = RuleSet.load(DEFAULT)
    assert run(RuleEngine(rules), with_evidence(scripted(kind), rules.evidence)) == expected


def test_also_conditions_must_all_hold_to_open_and_a_missing_metric_fails_them():
    e = RuleEngine(one(BASE.replace("    cooldown_s: 20\n", "    cooldown_s: 20\n    also:\n      - {metric: customer_anger_turns, op: '>=', threshold: 2}\n")))
    one_turn = [{"customer_angry": 0.9, "customer_anger_turns": 1}] * 15
    assert run(e, one_turn) == []                        # held for 15 s, but from one turn only
    missing = [{"customer_angry": 0.9}] * 15
    assert run(RuleEngine(e.rules), missing, "c2") == []
    two = [{"customer_angry": 0.9, "customer_anger_turns": 1}] * 5 + [{"customer_angry": 0.9, "customer_anger_turns": 2}] * 10
    assert run(RuleEngine(e.rules), two, "c3") == [(15, "anger", "open")]   # the duration counts only where all hold
    with pytest.raises(RuleError, match="also.0.op"):
        one(BASE + "    also:\n      - {metric: x, op: '=', threshold: 1}\n")


def test_an_opening_alert_carries_its_evidence():
    e = RuleEngine(one(BASE))
    got = []
    for i in range(12):
        got += e.evaluate("c1", float(i + 1), 0.0, {"customer_angry": 0.9},
                          lambda m: {"level": 7.0, "spans": [[1.0, 3.0]]} if m == "customer_angry" else None)
    assert len(got) == 1 and got[0].state == "open"
    assert got[0].evidence == {"metric": "customer_angry", "value": 0.9, "held_from_t": 0.0, "t": 10.0, "level": 7.0, "spans": [[1.0, 3.0]]}
    assert got[0].to_dict()["evidence"]["level"] == 7.0
