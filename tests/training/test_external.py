"""`train_external`: the credit-rating pipeline on an external table (stratified CV / out-of-time split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kernel.errors import ZhouxinError
from training.config import load_credit_rating_config
from training.external import train_external

pytestmark = pytest.mark.model

# small and fast: few rounds, small leaves (the production config is sized for the simulator's panel)
FAST = {"num_boost_round": 80, "early_stopping_rounds": 15, "min_data_in_leaf": 20, "learning_rate": 0.1}


def _table(n: int = 1500, seed: int = 7, shuffle: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    sector = rng.choice(["a", "b", "c"], size=n)
    logit = -2.5 + 1.2 * x1 - 0.8 * x2 + (sector == "c") * 0.7
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    if shuffle:
        y = rng.permutation(y)
    order = np.argsort(y, kind="stable")  # sorted by label, with a row number: the leak must be dropped
    df = pd.DataFrame({"x1": x1, "x2": x2, "noise": rng.normal(size=n), "sector": sector, "default": y})
    df = df.iloc[order].reset_index(drop=True)
    df.insert(0, "row_id", np.arange(1, n + 1, dtype=np.int32))
    df["month"] = pd.date_range("2015-01-31", periods=60, freq="ME").repeat(n // 60 + 1)[:n][
        rng.permutation(n)]
    return df


def _run(path: Path, **kw):
    return train_external(path, "default", folds=3, seed=11, cfg=load_credit_rating_config(),
                          lgb_overrides=FAST, **kw)


def test_signal_is_found_and_row_index_dropped(tmp_path):
    p = tmp_path / "t.parquet"
    _table().drop(columns="month").to_parquet(p)
    r = _run(p)
    assert r.mode == "stratified-cv" and len(r.folds) == 3
    assert 0.7 < r.summary["auc_mean"] < 0.97, r.summary
    assert r.dropped["row_id"].startswith("row index")
    assert "row_id" not in r.features and "sector" in r.features
    assert not np.isnan(r.oof_pd).any() and set(r.fold_of_row) == {0, 1, 2}
    assert abs(r.grades["share"].sum() - 1) < 1e-9
    assert all(r.folds["n_fit"] + r.folds["n_calibration"] + r.folds["n"] == 1500)


def test_shuffled_labels_give_chance_auc(tmp_path):
    p = tmp_path / "t.csv"
    _table(shuffle=True).drop(columns="month").to_csv(p, index=False)
    r = _run(p)
    assert abs(r.summary["auc_mean"] - 0.5) < 0.1, r.summary
    assert abs(r.summary["oof_auc"] - 0.5) < 0.1


def test_time_column_gives_out_of_time_split(tmp_path):
    p = tmp_path / "t.parquet"
    df = _table()
    df.to_parquet(p)
    r = train_external(p, "default", time_col="month", lgb_overrides=FAST)
    assert r.mode == "out-of-time" and len(r.folds) == 1
    tested = r.fold_of_row >= 0
    assert np.isnan(r.oof_pd[~tested]).all() and not np.isnan(r.oof_pd[tested]).any()
    assert df.loc[tested, "month"].min() > df.loc[~tested, "month"].max()
    assert 0.15 <= tested.mean() <= 0.25
    assert r.dropped["month"] == "time column" and "month" not in r.features
    assert r.summary["auc_mean"] > 0.7


@pytest.mark.parametrize(("mutate", "target", "match"), [
    (lambda d: d, "missing_col", "missing_col"),
    (lambda d: d.assign(default=d["default"] * 2), "default", "'default' is not binary"),
    (lambda d: d.assign(default=np.where(d["default"] == 1, "yes", "no")), "default", "'default' is not binary"),
    (lambda d: d.assign(default=0), "default", "'default' has a single class"),
    (lambda d: d.assign(default=d["default"].astype(float).where(d.index > 3)), "default", "'default' has 4 missing"),
    (lambda d: d.iloc[:0], "default", "empty file"),
])
def test_bad_inputs_name_the_file_and_column(tmp_path, mutate, target, match):
    p = tmp_path / "bad.parquet"
    mutate(_table(n=200).drop(columns="month")).to_parquet(p)
    with pytest.raises(ZhouxinError, match=match) as e:
        _run(p) if target == "default" else train_external(p, target)
    assert "bad.parquet" in str(e.value)


def test_empty_csv_and_missing_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(ZhouxinError, match=r"empty\.csv: empty file"):
        train_external(p, "default")
    with pytest.raises(ZhouxinError, match=r"nope\.parquet: no such file"):
        train_external(tmp_path / "nope.parquet", "default")
    q = tmp_path / "t.parquet"
    _table(n=200).to_parquet(q)
    with pytest.raises(ZhouxinError, match="time column 'when' not found"):
        train_external(q, "default", time_col="when")
