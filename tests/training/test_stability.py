"""§1.3 stability: the published grade moves at most N notches a month unless a severe rule fired."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from training.scale import load_rating_scale, pd_to_grade
from training.stability import newly_severe, publish

SCALE = load_rating_scale()
NAMES = list(SCALE.grade_names)
N = SCALE.stability.max_notches_per_month
CENTRAL = [g.central_pd for g in SCALE.grades]


def _panel(paths: list[list[int]], exempt_paths: list[list[bool]]):
    rows = [(f"F{i}", pd.Timestamp("2022-01-31") + pd.offsets.MonthEnd(t), CENTRAL[g], e)
            for i, (path, ex) in enumerate(zip(paths, exempt_paths, strict=True))
            for t, (g, e) in enumerate(zip(path, ex, strict=True))]
    f = pd.DataFrame(rows, columns=["uscc", "as_of", "pd", "exempt"]).sample(frac=1, random_state=0)
    return f.reset_index(drop=True)


paths = st.lists(st.lists(st.tuples(st.integers(0, len(NAMES) - 1), st.booleans()), min_size=1, max_size=8),
                 min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(paths=paths)
def test_published_grades_move_at_most_n_notches_unless_exempt(paths):
    f = _panel([[g for g, _ in p] for p in paths], [[e for _, e in p] for p in paths])
    out = publish(f["uscc"], f["as_of"], f["pd"].to_numpy(), f["exempt"].to_numpy(), SCALE)
    f["pub"] = [NAMES.index(g) for g in out.grade]
    f["raw"] = [NAMES.index(g) for g in pd_to_grade(f["pd"].to_numpy(), SCALE)]
    assert list(pd_to_grade(out.pd12, SCALE)) == list(out.grade)          # PD, score and grade agree
    assert not (out.held & f["exempt"].to_numpy()).any()
    for _, g in f.sort_values("as_of").groupby("uscc"):
        pub, raw, ex = g["pub"].to_numpy(), g["raw"].to_numpy(), g["exempt"].to_numpy()
        assert pub[0] == raw[0]
        for t in range(1, len(g)):
            if ex[t]:
                assert pub[t] == raw[t]
            else:
                assert abs(pub[t] - pub[t - 1]) <= N
                assert pub[t] == min(max(raw[t], pub[t - 1] - N), pub[t - 1] + N)   # as close to raw as allowed
        if (np.abs(np.diff(raw)) <= N).all():
            assert (pub == raw).all()


def test_a_gap_month_restarts_the_series_and_a_jump_is_spread_over_months():
    f = pd.DataFrame({"uscc": ["A"] * 4 + ["B"] * 2,
                      "as_of": pd.to_datetime(["2022-01-31", "2022-02-28", "2022-03-31", "2022-04-30",
                                               "2022-01-31", "2022-03-31"]),
                      "pd": [CENTRAL[0], CENTRAL[8], CENTRAL[8], CENTRAL[8], CENTRAL[0], CENTRAL[8]]})
    out = publish(f["uscc"], f["as_of"], f["pd"].to_numpy(), np.zeros(len(f), bool), SCALE)
    assert list(out.grade) == [NAMES[0], NAMES[N], NAMES[2 * N], NAMES[min(3 * N, 8)], NAMES[0], NAMES[8]]


def test_a_cap_that_newly_applies_or_tightens_is_severe():
    f = pd.DataFrame({"uscc": ["A", "A", "A", "A", "B"],
                      "as_of": pd.to_datetime(["2022-01-31", "2022-02-28", "2022-03-31", "2022-04-30", "2022-02-28"]),
                      "cap": [100.0, 55.0, 55.0, 45.0, 45.0]})
    assert newly_severe(f["uscc"], f["as_of"], f["cap"].to_numpy(), 55.0).tolist() == [False, True, False, True, True]
