"""JSON that browsers and other parsers accept: never NaN or Infinity (``json.dumps`` writes both by default,
and ``JSON.parse`` rejects them). A non-finite number becomes null, which every reader already treats as
"no value"; the encoder itself runs with ``allow_nan=False`` so nothing non-finite can slip through."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (at any depth of dicts, lists and tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
