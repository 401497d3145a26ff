"""Evidence on turns (workers/evidence.py) with the shipped rules, on scripted per-step score sequences.

A script is a list of (seconds, speech share, P(angry), sentiment) pieces, one call-level step per second;
P(angry) None means the leg did not speak (no scored window)."""

import json
from pathlib import Path

import numpy as np
import pytest

from stream.redis_keys import LEGS
from workers.call_state import CallState
from workers.evidence import CallEvidence, EvidenceConfig
from workers.rules import RuleEngine, RuleSet

DEFAULT = Path(__file__).resolve().parents[1] / "workers" / "default_rules.yaml"
OTHER = ("calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")


def info(speech, angry, sentiment, pause=None):
    """One leg's frozen step as workers/analysis.py makes it; pause: (leading, trailing, inner) non-speech, s."""
    if pause is None:
        pause = (1.0, 1.0, 1.0) if speech == 0 else (0.0, 0.0, 0.0)
    base = {"speech": speech, "cap": None, "loud": None, "pause": list(pause)}
    if angry is None:
        return base
    rest = (1.0 - angry) / len(OTHER)
    return {**base, "s": sentiment, "e": {"angry": angry, **{k: rest for k in OTHER}}}


def steps(script):
    for piece in script:
        seconds, speech, angry, sentiment = piece[:4]
        pause = piece[4] if len(piece) > 4 else None
        for _ in range(seconds):
            yield info(speech, angry, sentiment, pause)


def turns(n, angry, sentiment, talk_s=4, gap_s=2, edge=True):
    """n customer turns of talk_s seconds, separated by gap_s of silence; with edge, each turn starts and ends
    with a part-speech window, like a real turn's edges."""
    out = []
    for _ in range(n):
        if edge:
            out += [(1, 0.3, angry * 0.6, sentiment, (0.7, 0.0, 0.0))]
        out += [(talk_s, 0.9, angry, sentiment, (0.0, 0.0, 0.1))]
        if edge:
            out += [(1, 0.25, angry * 0.5, sentiment, (0.0, 0.75, 0.0))]
        out += [(gap_s, 0.0, None, None)]
    return out


CALM_START = turns(5, 0.05, 0.1)
HALF_LIFE_S = RuleSet.load(DEFAULT).evidence.anger.half_life_s


def replay(script, rules=None, cut_at=None):
    """Feed a customer script through CallEvidence and the rule engine. Returns (alerts, per-step metrics).
    With cut_at, the state is saved and restored (through JSON) at that step, as a rebalanced worker does."""
    ruleset = rules or RuleSet.load(DEFAULT)
    engine, ev, cfg = RuleEngine(ruleset), CallEvidence(LEGS), ruleset.evidence
    alerts, seen = [], []
    for i, cust in enumerate(steps(script)):
        t = float(i + 1)
        if cut_at is not None and i == cut_at:
            ev = CallEvidence.from_dict(LEGS, json.loads(json.dumps(ev.to_dict())))
            saved = json.loads(json.dumps(engine.export_state("c")))
            engine = RuleEngine(ruleset)
            engine.restore_state("c", saved)
        m = ev.step(t, {"agent": None, "customer": cust}, cfg, 1.0)
        seen.append(m)
        alerts += engine.evaluate("c", t, 1000.0 + t, m, lambda name: ev.details(cfg).get(name))
    return alerts, seen


def opened(alerts, rule="customer_anger"):
    return [a for a in alerts if a.rule == rule and a.state == "open"]


def test_a_sustained_rise_over_turns_alerts_with_its_evidence():
    alerts, _ = replay(CALM_START + turns(8, 0.9, -0.6))
    first_angry_s = sum(s for s, *_ in CALM_START) + 1
    got = opened(alerts)
    assert len(got) == 1
    assert got[0].t - first_angry_s <= 20
    ev = got[0].evidence
    assert ev["metric"] == "customer_anger_evidence" and ev["level"] > 3.0
    assert ev["baseline_ready"] and ev["baseline"] < 0.2 and ev["peak"] >= 0.85
    assert ev["spans"] and all(first_angry_s - 3 <= a < b <= got[0].t for a, b in ev["spans"])
    assert ev["turns"] >= 1 and got[0].evidence["windows"] >= 3


def test_a_single_angry_burst_does_not_alert():
    alerts, seen = replay(CALM_START + turns(1, 0.95, -0.8, talk_s=3) + turns(6, 0.05, 0.2))
    assert not opened(alerts) and not opened(alerts, "customer_negative")
    assert max(m["customer_anger_evidence"] for m in seen) > 0.5   # the burst did count, just not enough


def test_a_tense_customer_at_rest_does_not_alert():
    rng = np.random.default_rng(7)
    script = []
    for _ in range(14):
        a = float(rng.uniform(0.55, 0.7))
        script += turns(1, a, float(rng.uniform(-0.45, -0.3)))
    alerts, seen = replay(script)
    assert not opened(alerts) and not opened(alerts, "customer_negative")
    assert seen[-1]["customer_anger_evidence"] < 1.0


def test_the_same_tense_customer_becoming_angry_alerts():
    rng = np.random.default_rng(7)
    script = []
    for _ in range(6):
        script += turns(1, float(rng.uniform(0.55, 0.7)), -0.4)
    alerts, _ = replay(script + turns(8, 0.97, -0.8))
    assert len(opened(alerts)) == 1


def test_silent_steps_and_turn_edges_do_not_reset_the_evidence():
    script = CALM_START + turns(3, 0.9, -0.6)
    _, seen = replay(script)
    level = [m["customer_anger_evidence"] for m in seen]
    start = sum(s for s, *_ in CALM_START)
    angry = level[start:]
    speaking = [(x[1], x[2]) for x in script[len(CALM_START):] for _ in range(x[0])]
    for i in range(1, len(angry)):
        if speaking[i][1] is None:          # silence: only the half-life decay
            assert angry[i] == pytest.approx(angry[i - 1] * 2 ** (-1 / HALF_LIFE_S), abs=2e-4)
        elif speaking[i][0] < 0.5:          # a turn's edge: weighs by its speech, takes at most a little away
            assert angry[i] >= 0.9 * angry[i - 1]
    assert angry[-1] > 2.0
    # The old rule (P(angry) > 0.6 for 10 consecutive steps) never fires on the same turns.
    old = RuleSet.from_yaml("rules:\n  - {name: old, severity: warning, metric: customer_angry, op: '>', threshold: 0.6, for_s: 10}\n")
    alerts, _ = replay(CALM_START + turns(8, 0.9, -0.6), old)
    assert not alerts


def test_evidence_decays_with_call_time_and_the_alert_clears():
    script = CALM_START + turns(8, 0.9, -0.6)
    quiet_s = int(10 * HALF_LIFE_S)                  # ten half-lives of silence
    alerts, seen = replay(script + [(quiet_s, 0.0, None, None)])
    states = [a.state for a in alerts if a.rule == "customer_anger"]
    assert states == ["open", "clear"]
    end_of_anger = sum(s for s, *_ in script) - 1
    assert seen[-1]["customer_anger_evidence"] == pytest.approx(seen[end_of_anger]["customer_anger_evidence"] * 2 ** (-quiet_s / HALF_LIFE_S), rel=0.02)


def test_a_restored_state_continues_identically():
    script = CALM_START + turns(3, 0.9, -0.6) + turns(2, 0.1, 0.1) + turns(5, 0.9, -0.7)
    ref_alerts, ref = replay(script)
    for cut in (3, 25, 41, 60):
        alerts, got = replay(script, cut_at=cut)
        assert got == ref
        assert [a.to_dict() for a in alerts] == [a.to_dict() for a in ref_alerts]


def test_call_state_round_trip_keeps_the_evidence_and_alert_log():
    c = CallState("c1", 8000, 16000, 3.0)
    cfg = EvidenceConfig()
    for i, x in enumerate(steps(CALM_START + turns(2, 0.9, -0.6))):
        c.evidence.step(float(i + 1), {"agent": None, "customer": x}, cfg, 1.0)
    c.alert_log.append({"alert_id": "c1:customer_anger:1", "rule": "customer_anger", "t": 1.0, "evidence": {"level": 3.2}})
    back = CallState.from_state("c1", 8000, 16000, 3.0, c.to_state())
    assert back.evidence.to_dict() == c.evidence.to_dict()
    assert back.alert_log == c.alert_log
    nxt = info(0.9, 0.9, -0.6)
    assert back.evidence.step(99.0, {"customer": nxt, "agent": None}, cfg, 1.0) == c.evidence.step(99.0, {"customer": nxt, "agent": None}, cfg, 1.0)


def test_evidence_section_is_validated():
    from workers.rules import RuleError
    with pytest.raises(RuleError, match=r"evidence: anger.half_life_s"):
        RuleSet.from_yaml("evidence: {anger: {half_life_s: -1}}\nrules: []\n", "f.yaml")
    with pytest.raises(RuleError, match="unknown top-level keys"):
        RuleSet.from_yaml("evidnce: {}\nrules: []\n", "f.yaml")


def test_turns_are_speech_between_pauses_of_at_least_0_7_s():
    # one 8 s outburst whose clips are 0.3 s apart: one turn; then a 1.2 s pause across two steps: a second turn
    outburst = [(8, 0.85, 0.95, -0.8, (0.0, 0.0, 0.3))]
    pause_then_more = [(1, 0.4, 0.95, -0.8, (0.0, 0.6, 0.0)), (1, 0.4, 0.95, -0.8, (0.6, 0.0, 0.0)), (3, 0.9, 0.95, -0.8, (0.0, 0.0, 0.0))]
    _, seen = replay(CALM_START + outburst)
    assert seen[-1]["customer_anger_turns"] == 1
    _, seen = replay(CALM_START + outburst + pause_then_more)
    assert seen[-1]["customer_anger_turns"] == 2


def test_the_baseline_follows_every_window_it_takes_in():
    """The baseline's median and spread are kept between windows; each new baseline window must still move them."""
    from workers.evidence import Accumulator, _logit, _median, MAD_TO_SD
    cfg = EvidenceConfig()
    acc, rng = Accumulator(), np.random.default_rng(3)
    for i in range(cfg.baseline_windows + 5):
        acc.update(float(i), 1.0, 1.0, float(rng.uniform(0.02, 0.3)), cfg, cfg.anger, silent=False)
        base, spread, ready = acc.baseline(cfg, cfg.anger)
        if len(acc.base) < cfg.warmup_windows:
            assert (base, spread, ready) == (_logit(cfg.anger.prior_baseline), 0.0, False)
            continue
        med = _median(acc.base)
        assert ready and base == med and spread == MAD_TO_SD * _median([abs(x - med) for x in acc.base])
    assert len(acc.base) > cfg.warmup_windows + 2   # windows entered the baseline after it was first computed
    restored = Accumulator.from_list(json.loads(json.dumps(acc.to_list())))
    assert restored.baseline(cfg, cfg.anger) == acc.baseline(cfg, cfg.anger)


def test_the_rendered_evidence_reused_between_steps_is_always_what_details_gives():
    """The call hash's ``evidence`` field is reused while nothing it shows changed (``details_json``): through
    warm-up, calm stretches, rising and decaying evidence and a restore, it must equal a fresh render each step."""
    from workers.jsonfmt import compact_json
    script = CALM_START + turns(3, 0.9, -0.6) + [(40, 0.0, None, None)] + turns(4, 0.9, -0.7) + turns(2, 0.05, 0.1)
    ruleset = RuleSet.load(DEFAULT)
    ev, cfg, reused = CallEvidence(LEGS), ruleset.evidence, 0
    for i, cust in enumerate(steps(script)):
        if i == 30:
            ev = CallEvidence.from_dict(LEGS, json.loads(json.dumps(ev.to_dict())))
        ev.step(float(i + 1), {"agent": info(0.5, 0.1, 0.2), "customer": cust}, cfg, 1.0)
        before = ev._json
        assert ev.details_json() == compact_json(ev.details(cfg)), f"step {i}"
        reused += ev._json is before
    assert 0 < reused < i   # both paths were taken
