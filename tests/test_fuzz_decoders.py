"""The bounded decoder fuzz run (scripts/fuzz_decoders.py) with a million inputs; outside the default suite:
``bash scripts/test.sh -m fuzz tests/test_fuzz_decoders.py``."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from fuzz_decoders import run  # noqa: E402

FUZZ_INPUTS = 1_000_000


@pytest.mark.fuzz
@pytest.mark.timeout(1800)
def test_a_million_fuzzed_inputs_raise_only_the_documented_errors():
    result = run(FUZZ_INPUTS, seed=1, log=print)
    assert result["inputs"] == FUZZ_INPUTS and result["frames"] > 500_000 and result["events"] > 200_000
    assert result["findings"] == {}
