"""Operational databases for serving tests: a SQLite file and a private schema on the real PostgreSQL."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa

from serving.operational import open_operational

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request, tmp_path):
    """An operational engine on SQLite, or on PostgreSQL in a schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        eng = open_operational(f"sqlite:///{tmp_path}/operational.db")
        yield eng
        eng.dispose()
        return
    schema = f"zx_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG)
    with admin.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {schema}"))
    eng = open_operational(f"{PG}?options=-csearch_path%3D{schema}")
    yield eng
    eng.dispose()
    with admin.begin() as con:
        con.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _fit_champion(ws, seed: int, weight: float):
    """A real registered-model artefact over real online features of the small world.

    The label is synthetic (the 2018 world is too short for the 12-month out-of-time split), but the
    columns, categories, dates, calibration, scale and reason mapping are the production ones, so the
    service meets exactly the artefact training registers.
    """
    import lightgbm as lgb
    import numpy as np
    import pandas as pd
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    from training.credit_rating import TrainedRating
    from training.evaluation import calibration_by_grade
    from training.rating_model import CreditRatingModel
    from training.reasons import column_reasons, load_reason_codes
    from training.scale import cap_floors, load_rating_scale

    src = ws / "features" / "sources"
    ind = pd.read_parquet(src / "mart_indicators.parquet",
                          columns=["uscc", "event_timestamp", "cci", "idx_A", "idx_B", "idx_C", "idx_D", "idx_E"])
    reg = (pd.read_parquet(src / "ent_registration.parquet",
                           columns=["uscc", "event_timestamp", "establish_date", "enterprise_scale"])
           .sort_values("event_timestamp").drop_duplicates("uscc", keep="last").drop(columns="event_timestamp"))
    df = ind.merge(reg, on="uscc").dropna(subset=["cci"]).reset_index(drop=True)
    days = (df["event_timestamp"] - pd.to_datetime(df["establish_date"])).dt.days.astype("float32")
    scales = sorted(df["enterprise_scale"].dropna().unique())
    x = pd.DataFrame({**{f"mart_indicators__{c}": df[c].astype("float32")
                         for c in ("cci", "idx_A", "idx_B", "idx_C", "idx_D", "idx_E")},
                      "ent_registration__establish_date": days,
                      "ent_registration__enterprise_scale": pd.Categorical(df["enterprise_scale"], categories=scales)})
    rng = np.random.default_rng(seed)
    logit = -3.5 - weight * (df["cci"].to_numpy() - 60) / 10 - 0.3 * (days.to_numpy() < 1500)
    y = (rng.random(len(df)) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed,
                         "min_data_in_leaf": 50}, lgb.Dataset(x, y), num_boost_round=30)
    cal = IsotonicRegression(out_of_bounds="clip", y_min=1e-5, y_max=1 - 1e-5).fit(booster.predict(x), y)
    scale, codes = load_rating_scale(), load_reason_codes()
    model = CreditRatingModel(booster, cal, list(x.columns), {"ent_registration__enterprise_scale": scales},
                              scale.score.model_dump(), [g.pd_upper for g in scale.grades], list(scale.grade_names),
                              "credit_rating", column_reason=column_reasons(list(x.columns), codes),
                              reason_text={r: (t.zh, t.en) for r, t in codes.reasons.items()})
    model.set_caps(scale.grade_caps.cap_column, cap_floors(scale))      # as training does
    p = model.pd12(x)
    rows = pd.DataFrame({"uscc": df["uscc"], "as_of": df["event_timestamp"], "y": y, "split": "test"})
    return TrainedRating(model=model, params={"seed": seed}, metrics={"test_auc": float(roc_auc_score(y, p)),
                                                                      "test_brier": float(np.mean((p - y) ** 2))},
                         grade_table=calibration_by_grade(y, p),
                         importance=pd.DataFrame({"feature": list(x.columns), "gain": booster.feature_importance("gain")}),
                         rows=rows, test_pd=p, test_y=y,
                         windows={"train": "2018-01..2018-12", "validation": "2018", "test": "2018"})


@pytest.fixture(scope="session")
def register_champion():
    """register(ws, seed, weight, promote=True) -> version: log a fitted artefact as `credit-rating`."""
    def register(ws, seed: int = 1, weight: float = 1.0, force_champion: bool = False) -> str:
        from data.feature_store.store import open_store
        from kernel.profile import load_profile
        from training.config import credit_rating_config_path, load_credit_rating_config
        from training.registry import CHAMPION, log_rating_model, record_alias_move

        prof = load_profile("local")
        _, version, gate = log_rating_model(ws, _fit_champion(ws, seed, weight), load_credit_rating_config(),
                                            credit_rating_config_path(), open_store(ws, prof), prof)
        if force_champion and not gate.promoted:
            record_alias_move(ws, "credit-rating", CHAMPION, version, "test: promoted by hand")
        return version

    return register
