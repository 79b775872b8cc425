""""One enterprise, one file" (一企一档): everything the platform knows about a firm as of a date.

Registration, ownership and actual controller, the 49 indicator scores, five sub-indices and the CCI,
the champion's PD / score / grade with reasons, and recent serious credit events — all point in time,
read from the feature store exactly as training sees it, so a past profile can be reproduced.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from data.feature_store.profile_blocks import expand_blocks, registered_view_fields
from data.feature_store.store import open_store
from data.feature_store.training_set import point_in_time_join, view_sources
from data.marts.events import serious_credit_events
from data.marts.grid import connect_warehouse
from kernel.errors import ZhouxinError
from kernel.profile import Profile, load_profile
from kernel.uscc import normalise_uscc, uscc_problem
from kernel.workspace import platform_dir, warehouse_db
from training.panel import to_matrix


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()[:10]
    if hasattr(v, "item"):
        return v.item()
    return v


def enterprise_profile(ws: Path, uscc: str, as_of: date, profile: Profile | None = None,
                       with_rating: bool = True) -> dict[str, Any]:
    """The firm's file as of `as_of` (a dict ready for JSON). Unknown firms are a clear error."""
    uscc = normalise_uscc(uscc)
    problem = uscc_problem(uscc)
    if problem:
        raise ZhouxinError(f"uscc {uscc!r}: {problem}")
    prof = profile or load_profile()
    store = open_store(ws, prof)
    views = view_sources(store, "credit_rating")
    ts = pd.Timestamp(as_of)
    table = point_in_time_join(pd.DataFrame({"uscc": [uscc], "event_timestamp": [ts]}), views, as_arrow=True)
    row = table.to_pandas().iloc[0]
    if pd.isna(row.get("ent_registration__ent_name")):
        raise ZhouxinError(f"no registration of {uscc} was known on {as_of}")
    out: dict[str, Any] = {"uscc": uscc, "as_of": str(as_of)}
    blocks = expand_blocks(registered_view_fields(store))        # the same blocks the bank API shows
    out["registration"] = {r.split(":", 1)[1]: _plain(row.get(r.replace(":", "__", 1)))
                           for r in blocks["registration"]}
    out["ownership"] = {r.split(":", 1)[1].removeprefix("eq_"): _plain(row.get(r.replace(":", "__", 1)))
                        for r in blocks["ownership"]}
    ind = {c.removeprefix("mart_indicators__"): _plain(v) for c, v in row.items()
           if str(c).startswith("mart_indicators__")}
    out["credit_index"] = {"cci": ind.get("cci"), "cci_tier": ind.get("cci_tier"), "cci_cap": ind.get("cci_cap"),
                           "sub_indices": {k.removeprefix("idx_"): v for k, v in ind.items()
                                           if k.startswith("idx_") and len(k) == 5},
                           "indicators": {k.removeprefix("ind_").removesuffix("_score"): v for k, v in ind.items()
                                          if k.startswith("ind_") and k.endswith("_score")}}
    con = connect_warehouse(warehouse_db(ws))
    try:
        ev = serious_credit_events(con, platform_dir(ws))
    finally:
        con.close()
    mine = ev[(ev["uscc"] == uscc) & (ev["event_date"] <= ts) & (ev["event_date"] > ts - pd.DateOffset(months=24))]
    out["recent_events"] = [{"date": d.date().isoformat(), "trigger": t} for d, t in
                            zip(mine["event_date"], mine["trigger"], strict=True)]
    in_default = bool(((ev["uscc"] == uscc) & (ev["event_date"] <= ts)
                       & (ev["event_date"] > ts - pd.Timedelta(days=365))).any())
    out["in_default"] = in_default
    if in_default:        # §0: a firm with a serious credit event in the last 12 months is D, not scored
        out["rating"] = {"grade": "D", "pd12": 1.0, "score": None, "reasons": [],
                         "note": "serious credit event within 12 months: in default, not scored"}
    else:
        out["rating"] = _rating(ws, prof, table, ts) if with_rating else None
    return out


def _rating(ws: Path, prof: Profile, table: pa.Table, ts: pd.Timestamp) -> dict[str, Any] | None:
    """The champion's answer for this firm-month, or None when no champion is registered."""
    import mlflow

    from training.config import load_credit_rating_config
    from training.registry import CHAMPION, alias_version, setup_mlflow

    cfg = load_credit_rating_config()
    setup_mlflow(ws, prof, cfg.experiment)
    mv = alias_version(cfg.model_name, CHAMPION)
    if mv is None:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{cfg.model_name}/{mv.version}").unwrap_python_model()
    x, _ = to_matrix(table.drop_columns(["uscc", "event_timestamp"]), pd.Series([ts]), model.columns,
                     model.categories)
    model_pd = model.pd12(x)
    col = getattr(model, "cap_column", None)
    cap_value = table.column(col).to_pylist() if col and col in table.column_names else [None]
    p, cap = model.apply_caps(model_pd, cap_value) if hasattr(model, "apply_caps") else (model_pd, [None])
    reasons = [cap[0], *model.reasons(x).iloc[0]]
    return {"model": cfg.model_name, "version": str(mv.version), "pd12": float(p[0]),
            "model_pd12": float(model_pd[0]), "rating_cap": cap[0],
            "score": int(model.score(p)[0]), "grade": str(model.grade(p)[0]),
            "reasons": [{"code": c, "zh": model.reason_texts(c)[0], "en": model.reason_texts(c)[1]}
                        for c in reasons if c is not None]}
