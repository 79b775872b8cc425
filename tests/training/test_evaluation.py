"""Evaluation by group: per year and sector, discrimination, calibration in the large and stability."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.evaluation import metrics_by_group


def test_metrics_by_group_separates_good_and_useless_groups():
    rng = np.random.default_rng(0)
    n = 4000
    pd_ = rng.uniform(0.001, 0.2, n)
    y = (rng.random(n) < pd_).astype(int)
    frame = pd.DataFrame({"split": "test", "y": y, "pd": pd_, "year": 2022,
                          "sector": np.where(np.arange(n) < n // 2, "fishery", "port_logistics")})
    frame.loc[frame["sector"] == "port_logistics", "pd"] = rng.permutation(frame.loc[frame["sector"] == "port_logistics", "pd"].to_numpy())
    frame.loc[:9, ["sector", "y"]] = ["tiny", 0]                    # one class only
    out = metrics_by_group(frame, reference_pd=pd_).set_index(["dimension", "group"])
    assert out.loc[("sector", "fishery"), "auc"] > 0.65                # the PD ranks risk here ...
    assert abs(out.loc[("sector", "port_logistics"), "auc"] - 0.5) < 0.06   # ... and is noise there
    assert np.isnan(out.loc[("sector", "tiny"), "auc"])
    assert out.loc[("year", "2022"), "n"] == n
    assert out.loc[("year", "2022"), "psi_vs_train"] < 0.01            # same distribution as the reference
    shifted = metrics_by_group(frame.assign(pd=frame["pd"] * 3), reference_pd=pd_).set_index(["dimension", "group"])
    assert shifted.loc[("year", "2022"), "psi_vs_train"] > 0.25         # a shifted score is flagged


def test_grade_summary_counts_inside_populated_and_the_good_or_better_share():
    from training.evaluation import calibration_by_grade, grade_summary

    p = np.array([0.0003] * 50 + [0.004] * 30 + [0.3] * 20)
    y = np.array([0] * 50 + [0] * 30 + [1] * 6 + [0] * 14)
    s = grade_summary(calibration_by_grade(y, p))
    assert s["grades_populated"] == 3 and s["share_aaa_bb"] == 0.8
    assert s["grades_inside"] == 3
