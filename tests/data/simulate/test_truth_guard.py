"""Ground truth is read only by evaluation code: statically (source scan) and at run time."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pandas as pd
import pytest

from data.simulate import truth as truth_module
from kernel.errors import TruthAccessError

ROOT = Path(__file__).resolve().parents[3]
ALLOWED = ("data/simulate/", "data/warehouse/evaluation.py", "training/evaluation", "monitoring/backtest")
PATTERN = re.compile(r"truth_dir|read_truth|[\"'/]truth[/\"']|truth_enterprise|truth_oracle|dirty_log")


def test_no_code_outside_evaluation_reaches_into_truth() -> None:
    offenders = []
    for pkg in ("kernel", "data", "features", "training", "serving", "monitoring", "zhouxin"):
        for path in (ROOT / pkg).rglob("*.py") if (ROOT / pkg).is_dir() else []:
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED) or rel == "kernel/workspace.py":
                continue
            if PATTERN.search(path.read_text(encoding="utf-8")):
                offenders.append(rel)
    assert offenders == [], f"code outside evaluation reads truth/: {offenders}"


def test_scan_would_catch_an_offender(tmp_path: Path) -> None:
    sneaky = "import pandas as pd\nlabels = pd.read_parquet(ws / 'truth/truth_oracle_pd.parquet')\n"
    assert PATTERN.search(sneaky)


def test_runtime_guard_refuses_feature_code(tmp_path: Path) -> None:
    (tmp_path / "truth_enterprise.parquet").parent.mkdir(exist_ok=True)
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "truth_enterprise.parquet")
    fake = types.ModuleType("features.credit_view")
    code = compile("def steal(root):\n    return read_truth('truth_enterprise', root)\n", "/repo/features/credit_view.py", "exec")
    fake.__dict__["read_truth"] = truth_module.read_truth
    exec(code, fake.__dict__)
    with pytest.raises(TruthAccessError, match=r"features\.credit_view"):
        fake.steal(tmp_path)
    assert truth_module.read_truth("truth_enterprise", tmp_path)["a"].tolist() == [1]
