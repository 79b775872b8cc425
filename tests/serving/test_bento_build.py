"""`bentoml build` works offline (no lock step) and the Bento carries the service code, never data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_bento_builds_offline_with_the_service_and_no_workspace(tmp_path):
    uv = shutil.which("uv") or (ROOT / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("bentoml build needs uv on PATH; `make install` puts it in .tools/bin")
    env = os.environ | {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True",
                        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",   # no network
                        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([str(Path(sys.executable).with_name("bentoml")), "build", str(ROOT)], env=env,
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    src = next((tmp_path / "bentoml" / "bentos" / "zhouxin").glob("*/src"))
    files = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    assert {"serving/service.py", "serving/families/credit_rating.py", "configs/serving.yaml",
            "configs/profiles/production.yaml", "data/feature_store/online_read.py"} <= files
    assert not any(f.startswith(("workspace/", "tests/", "training/", ".venv/")) for f in files)
    probe = subprocess.run([sys.executable, "-c", "import sys; sys.modules['training'] = None; "
                            "import serving.service, serving.replay; print('ok')"],
                           cwd=src, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0 and probe.stdout.strip().endswith("ok"), probe.stderr[-2000:]
