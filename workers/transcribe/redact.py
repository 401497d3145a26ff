"""Redaction of transcripts before anything is written: digit sequences and e-mail addresses.

Transcripts are personal data. Card, phone and account numbers come out of Whisper as digits ("4111 1111 ...")
or, when spoken slowly, as words ("quattro uno uno ..."); both become ``[number]`` once a run holds at least
``MIN_DIGITS`` digits (so "3 euro" or "due minuti" stay, a PIN, a year or a card number go). E-mail addresses,
written or spoken ("mario punto rossi chiocciola esempio punto it"), become ``[email]``.
"""

from __future__ import annotations

import re

MIN_DIGITS = 4
NUMBER_TOKEN = "[number]"
EMAIL_TOKEN = "[email]"

DIGIT_WORDS = {
    # Italian
    "zero", "uno", "una", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove",
    # English ("oh" as a digit only inside a run: a lone "oh" never reaches MIN_DIGITS)
    "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "doppio", "double",   # "double five" / "doppio cinque": counts as a digit word inside a run
}
# A unit is a number, a code with digits in it (IT60, X054: IBANs, account codes) or a digit word.
_UNIT = r"(?:[^\W\d_]{0,4}\d[^\W_]*|" + "|".join(sorted(DIGIT_WORDS, key=len, reverse=True)) + r")"
_SEP = r"(?:\s*[-/.,]\s*|\s+)"
DIGIT_RUN = re.compile(rf"(?<![\w@]){_UNIT}(?:{_SEP}{_UNIT})*(?![\w@])", re.IGNORECASE)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_SPOKEN_PART = r"[\w]+(?:\s+(?:punto|dot)\s+[\w]+)*"
SPOKEN_EMAIL = re.compile(rf"\b{_SPOKEN_PART}\s+(?:chiocciola|at)\s+[\w]+(?:\s+(?:punto|dot)\s+[\w]+)+", re.IGNORECASE)


def _digits_in(run: str) -> int:
    n = 0
    for part in re.findall(r"\d+|[^\W\d_]+", run):   # letters inside codes count nothing
        if part.isdigit():
            n += len(part)
        elif part.lower() in DIGIT_WORDS and part.lower() not in ("doppio", "double"):
            n += 1
    return n


def _numbers(match: re.Match) -> str:
    return NUMBER_TOKEN if _digits_in(match.group(0)) >= MIN_DIGITS else match.group(0)


def redact(text: str) -> tuple[str, int]:
    """Returns (redacted text, number of redactions)."""
    count = 0

    def replace(repl):
        def one(m: re.Match) -> str:
            nonlocal count
            out = repl(m) if callable(repl) else repl
            count += out != m.group(0)
            return out
        return one

    for pattern, repl in ((EMAIL, EMAIL_TOKEN), (SPOKEN_EMAIL, EMAIL_TOKEN), (DIGIT_RUN, _numbers)):
        text = pattern.sub(replace(repl), text)
    return text, count
