"""Issue 17: loading and running the models writes nothing to disk (onnxruntime's telemetry wrote a device id and
an SQLite database under ~/.cache/Microsoft/DeveloperTools as soon as the library was imported)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import numpy as np
from workers.inference import Models
m = Models(None)
m.predict(np.zeros((4, 16000), np.float32))
print("ok")
"""


def test_loading_and_running_the_models_writes_nothing_under_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
    written = [str(p.relative_to(home)) for p in home.rglob("*")]
    assert written == [], f"written under HOME: {written}"
