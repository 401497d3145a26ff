"""Cues from the words: phrase and keyword rules per language (YAML), matched on redacted transcripts.

A cue that matches raises an alert record in the same JSON shape as ``workers.rules.Alert`` (``alert_id, call_id,
rule, severity, leg, state, value, threshold, t, at, message``), so calls.alerts, the ``cp:alerts`` stream and
the dashboard treat it like any other alert. Cues are instantaneous: one ``open`` event, no ``clear``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .rules import Alert

DEFAULT_CUES = Path(__file__).with_name("default_cues.yaml")
DEFAULT_COOLDOWN_S = 60.0


class CueError(ValueError):
    pass


class Cue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""
    severity: Literal["info", "warning", "critical"]
    leg: Literal["agent", "customer", "any"] = "any"
    cooldown_s: float = Field(DEFAULT_COOLDOWN_S, ge=0)
    phrases: dict[str, list[str]] = Field(min_length=1)


def normalise(text: str) -> str:
    """Lower case, accents removed (perché -> perche), punctuation -> spaces, single spaces."""
    t = unicodedata.normalize("NFKD", text.lower())
    t = "".join(c for c in t if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w*]+", " ", t.replace("_", " ")).split())


def _pattern(phrase: str) -> str:
    words = normalise(phrase).split()
    if not words:
        raise CueError(f"empty phrase {phrase!r}")
    return r"\b" + r"\s".join(re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w.replace("*", "")) for w in words) + r"\b"


@dataclass(frozen=True, slots=True)
class CueHit:
    cue: Cue
    phrase: str


class CueSet:
    def __init__(self, cues: list[Cue]) -> None:
        self.cues = cues
        self._compiled: dict[str, list[tuple[Cue, str, re.Pattern]]] = {}
        for cue in cues:
            for lang, phrases in cue.phrases.items():
                for p in phrases:
                    self._compiled.setdefault(lang, []).append((cue, p, re.compile(_pattern(p))))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CUES) -> "CueSet":
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CueError(f"{path}: cannot read cues: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("cues"), list):
            raise CueError(f"{path}: expected a mapping with a 'cues' list")
        cues, seen = [], set()
        for i, raw in enumerate(doc["cues"]):
            try:
                cue = Cue.model_validate(raw)
            except ValidationError as exc:
                name = raw.get("name", f"#{i}") if isinstance(raw, dict) else f"#{i}"
                raise CueError(f"{path}: cue {name}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
            if cue.name in seen:
                raise CueError(f"{path}: cue {cue.name} is defined twice")
            seen.add(cue.name)
            cues.append(cue)
        return cls(cues)

    def match(self, text: str, language: str, leg: str) -> list[CueHit]:
        """Cues whose phrases occur in ``text`` (one hit per cue, the first phrase that matched)."""
        norm = normalise(text)
        hits: dict[str, CueHit] = {}
        for cue, phrase, rx in self._compiled.get(language, []):
            if cue.name in hits or cue.leg not in ("any", leg):
                continue
            if rx.search(norm):
                hits[cue.name] = CueHit(cue, phrase)
        return list(hits.values())


def cue_alert(hit: CueHit, call_id: str, leg: str, t: float, at: float, text: str) -> Alert:
    """``alert_id`` is deterministic (call, cue, leg, call time in ms): a re-transcribed utterance yields the
    same id. ``text`` must already be redacted. The rule engine's own alert record: one shape on calls.alerts."""
    return Alert(f"{call_id}:{hit.cue.name}:{leg}:{int(round(t * 1000))}", call_id, hit.cue.name, hit.cue.severity,
                    leg, "open", 1.0, 1.0, float(t), float(at),
                    f"{hit.cue.description or hit.cue.name} (said \"{hit.phrase}\": \"{text[:120]}\")",
                    evidence={"metric": "transcript_phrase", "value": 1.0, "held_from_t": float(t), "t": float(t), "phrase": hit.phrase})
