"""Master scale (ratings_and_signals.md §1) and the §0 labels on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.labels import label_panel
from training.scale import load_rating_scale, pd_to_grade, pd_to_score


def test_score_examples_of_the_spec():
    pd_ = np.array([0.0003, 0.0046, 0.02, 0.35, 0.5, 1 / 51])
    assert pd_to_score(pd_).tolist() == [903, 706, 599, 362, 318, 600]


@pytest.mark.parametrize(("p", "grade"), [(0.0001, "AAA"), (0.0005, "AA"), (0.00119, "AA"), (0.0012, "A"),
                                          (0.0069, "BBB"), (0.0199, "BB"), (0.02, "B"), (0.1, "CC"), (0.5, "C"),
                                          (1.0, "C")])
def test_grade_bands(p, grade):
    assert pd_to_grade(np.array([p]))[0] == grade


@given(st.lists(st.floats(min_value=1e-6, max_value=0.999), min_size=2, max_size=40))
def test_score_and_grade_are_monotone_in_pd(ps):
    p = np.sort(np.array(ps))
    scores = pd_to_score(p)
    assert np.all(np.diff(scores) <= 0)
    order = {g: i for i, g in enumerate(load_rating_scale().grade_names)}
    ranks = [order[g] for g in pd_to_grade(p)]
    assert ranks == sorted(ranks)


def test_labels_horizon_default_and_censoring():
    g = pd.DataFrame({"uscc": ["a", "a", "a", "b", "b"],
                      "as_of": pd.to_datetime(["2019-01-31", "2019-06-30", "2020-03-31", "2019-01-31", "2020-12-31"])})
    e = pd.DataFrame({"uscc": ["a", "b"], "event_date": pd.to_datetime(["2020-01-15", "2021-06-01"])})
    out = label_panel(g, e, 365, pd.Timestamp("2021-06-30"))
    assert out["y"].tolist() == [1, 1, 0, 0, 1]
    assert out["in_default"].tolist() == [False, False, True, False, False]   # a's event 2020-01 is < 12 m before
    assert out["censored"].tolist() == [False, False, False, False, False]
    late = label_panel(g, e, 365, pd.Timestamp("2021-01-31"))
    assert late["censored"].tolist() == [False, False, True, False, False]    # a @2020-03: window ends 2021-03
    # an event on the as-of day itself is not in the future window: it makes the firm in default
    same = label_panel(g.iloc[[0]], pd.DataFrame({"uscc": ["a"], "event_date": [pd.Timestamp("2019-01-31")]}), 365,
                       pd.Timestamp("2021-06-30"))
    assert same["y"].tolist() == [0] and same["in_default"].tolist() == [True]
