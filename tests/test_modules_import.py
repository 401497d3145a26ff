"""Every module of the serving path and its tools imports: a command that no test runs end to end (``callpulse
bench --transcribe`` once imported a helper that had moved) fails here instead of in a user's hands."""

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stream", "workers", "dashboard")
MODULES = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                 if p.name != "__init__.py")


def test_the_list_is_not_empty():
    assert len(MODULES) > 50 and "stream.bench_transcribe" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    if name.startswith("workers.transcribe."):
        pytest.importorskip("ctranslate2", reason="the 'transcribe' extra is not installed (scripts/test.sh installs it)")
    importlib.import_module(name)
