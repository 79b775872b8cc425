"""The out-of-time split: train < validation < test, separated by the label-horizon embargo."""

from __future__ import annotations

import pandas as pd
import pytest

from kernel.errors import ZhouxinError
from training.config import load_credit_rating_config
from training.panel import assign_splits, to_matrix


def test_splits_are_ordered_and_embargoed():
    cfg = load_credit_rating_config()            # test 12, validation 6, embargo 12 months
    months = pd.Series(pd.date_range("2018-01-31", "2022-12-31", freq="ME"))
    split = assign_splits(months, cfg, pd.Timestamp("2022-12-31"))
    by = {s: months[split == s] for s in ("train", "validation", "test")}
    assert by["test"].min() == pd.Timestamp("2022-01-31") and by["test"].max() == pd.Timestamp("2022-12-31")
    assert (by["validation"].min(), by["validation"].max()) == (pd.Timestamp("2020-07-31"), pd.Timestamp("2020-12-31"))
    assert by["train"].max() == pd.Timestamp("2019-06-30")
    # no label window of an earlier split reaches into a later split (12-month horizon)
    assert by["train"].max() + pd.DateOffset(months=12) < by["validation"].min()
    assert by["validation"].max() + pd.DateOffset(months=12) < by["test"].min()
    assert split.isna().sum() == len(months) - sum(len(v) for v in by.values())   # embargoed months unused


def test_too_short_a_world_is_refused_with_the_windows():
    cfg = load_credit_rating_config()
    months = pd.Series(pd.date_range("2020-01-31", "2022-12-31", freq="ME"))
    with pytest.raises(ZhouxinError, match="too short"):
        assign_splits(months, cfg, pd.Timestamp("2022-12-31"))


def test_matrix_reuses_training_categories_and_ages_dates():
    import pyarrow as pa

    train = pa.table({"v__cat": ["a", "b", None], "v__d": pa.array([pd.Timestamp("2020-01-01")] * 3, pa.timestamp("us")),
                      "v__x": pa.array([1, None, 3], pa.int64()), "v__id": [f"P_{i}" for i in range(3)]})
    x, cats = to_matrix(train, pd.Series(pd.to_datetime(["2020-01-31"] * 3)), max_categories=2)
    assert list(x.columns) == ["v__cat", "v__d", "v__x"]           # 3 distinct ids > 2: dropped
    assert x["v__d"].tolist() == [30.0, 30.0, 30.0] and pd.isna(x["v__x"][1])
    later = pa.table({"v__cat": ["c", "a"], "v__d": pa.array([None, None], pa.timestamp("us")), "v__x": [5, 6]})
    y, _ = to_matrix(later, pd.Series(pd.to_datetime(["2021-01-31"] * 2)), list(x.columns), cats)
    assert pd.isna(y["v__cat"][0]) and y["v__cat"][1] == "a"       # an unseen category is missing, not new
