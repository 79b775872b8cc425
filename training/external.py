"""The credit-rating pipeline on an external table: `zhouxin train credit-rating --dataset FILE --target COL`.

Same model as the simulator pipeline (LightGBM with the config's parameters, isotonic calibration,
PD -> master-scale grade), with no per-dataset code:

- the matrix is every column except the target (and the time column), built by `panel.to_matrix`;
  columns that are a row index (integers, all distinct, one consecutive run) are dropped, because a
  file sorted by its label turns such a column into a perfect leak;
- no monotone constraints (external data declares no risk directions);
- no time column: seeded stratified K-fold CV; inside each fold an early-stopping / calibration split is
  taken from the training part only, never from the held-out fold;
- a time column: one out-of-time split (test = the latest 20 % of rows by time; the early-stopping /
  calibration part = the latest 20 % of the remaining training rows).

Nothing is written anywhere: the result is returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from kernel.errors import ZhouxinError
from training.config import CreditRatingConfig, load_credit_rating_config
from training.evaluation import calibration_by_grade, discrimination
from training.fitting import fit_early_stopped, fit_isotonic, fitting_matrix, lgb_params
from training.panel import to_matrix

DEFAULT_SEED = 20260101
INNER_SHARE = 0.2    # of each training part: early stopping + isotonic calibration
OOT_TEST_SHARE = 0.2  # with a time column: the latest share of rows is the test set
LEAK_AUC = 0.99      # a single column ranking the target this well is flagged


@dataclass
class ExternalResult:
    """Cross-validated (or out-of-time) evaluation of the credit-rating pipeline on an external table."""

    path: Path
    target: str
    mode: str                      # "stratified-cv" | "out-of-time"
    n_rows: int
    n_events: int
    features: list[str]            # candidate feature columns (after exclusions)
    dropped: dict[str, str]        # column -> why it is not a feature
    folds: pd.DataFrame            # one row per fold: n, events, auc, auc_raw, ks, brier, trees, ...
    summary: dict[str, float]      # mean / sd over folds, pooled out-of-fold metrics
    grades: pd.DataFrame           # out-of-fold PD by master-scale grade (n, share, observed, band, ...)
    oof_pd: np.ndarray             # calibrated PD per input row (NaN where the row was never tested)
    fold_of_row: np.ndarray        # fold index per input row (-1: training only, out-of-time mode)
    warnings: list[str] = field(default_factory=list)
    windows: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def read_table(path: Path) -> pa.Table:
    path = Path(path)
    if not path.is_file():
        raise ZhouxinError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pa.Table.from_pandas(pd.read_parquet(path), preserve_index=False)
        elif suffix in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
            table = pa.Table.from_pandas(pd.read_csv(path), preserve_index=False)
        else:
            raise ZhouxinError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")
    except ZhouxinError:
        raise
    except pd.errors.EmptyDataError as e:
        raise ZhouxinError(f"{path}: empty file") from e
    except Exception as e:  # unreadable bytes: name the file
        raise ZhouxinError(f"{path}: cannot read as {suffix.lstrip('.')}: {e}") from e
    if table.num_rows == 0:
        raise ZhouxinError(f"{path}: empty file (0 rows)")
    return table


def binary_target(table: pa.Table, target: str, path: Path) -> np.ndarray:
    """The target as int8 0/1; anything else (missing, other values, one class) is an error naming it."""
    if target not in table.column_names:
        raise ZhouxinError(f"{path}: target column {target!r} not found (columns: "
                           f"{', '.join(table.column_names[:20])}{' …' if table.num_columns > 20 else ''})")
    s = table.column(target).to_pandas()
    if s.isna().any():
        raise ZhouxinError(f"{path}: target column {target!r} has {int(s.isna().sum())} missing values")
    if s.dtype == bool:
        s = s.astype(np.int8)
    values = set(pd.unique(s).tolist())
    if not pd.api.types.is_numeric_dtype(s) or not values <= {0, 1}:
        shown = sorted(map(str, values))[:10]
        raise ZhouxinError(f"{path}: target column {target!r} is not binary 0/1 (values: {', '.join(shown)})")
    if len(values) < 2:
        raise ZhouxinError(f"{path}: target column {target!r} has a single class ({values.pop()})")
    return s.to_numpy().astype(np.int8)


def _time_values(table: pa.Table, time_col: str, path: Path) -> pd.Series:
    if time_col not in table.column_names:
        raise ZhouxinError(f"{path}: time column {time_col!r} not found")
    s = table.column(time_col).to_pandas()
    if not pd.api.types.is_numeric_dtype(s):
        try:
            s = pd.to_datetime(s)
            if getattr(s.dt, "tz", None) is not None:
                s = s.dt.tz_localize(None)
        except (ValueError, TypeError) as e:
            raise ZhouxinError(f"{path}: time column {time_col!r} is neither numeric nor a date") from e
    if s.isna().any():
        raise ZhouxinError(f"{path}: time column {time_col!r} has {int(s.isna().sum())} missing values")
    return s


def _is_row_index(col: pa.ChunkedArray) -> bool:
    """Integers, all distinct, one consecutive run (1..n, 0..n-1, any offset): a row number, not a feature."""
    if not pa.types.is_integer(col.type) or col.null_count or len(col) < 3:
        return False
    mm = pc.min_max(col).as_py()
    return mm["max"] - mm["min"] + 1 == len(col) and pc.count_distinct(col).as_py() == len(col)


def feature_table(table: pa.Table, target: str, time_col: str | None, exclude: Sequence[str]
                  ) -> tuple[pa.Table, dict[str, str]]:
    """The candidate feature columns (types `to_matrix` understands) and why the others are dropped."""
    dropped: dict[str, str] = {target: "target"}
    if time_col:
        dropped[time_col] = "time column"
    for c in exclude:
        if c in table.column_names and c not in dropped:
            dropped[c] = "excluded"
    cols, arrays = [], []
    for name in table.column_names:
        if name in dropped:
            continue
        col = table.column(name)
        typ = col.type
        if pa.types.is_dictionary(typ):  # pandas categoricals
            col = col.cast(pa.string()) if pa.types.is_string(typ.value_type) else col.cast(typ.value_type)
            typ = col.type
        if pa.types.is_decimal(typ):
            col = col.cast(pa.float64())
            typ = col.type
        if pa.types.is_null(typ) or col.null_count == len(col):
            dropped[name] = "all missing"
            continue
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)
                or pa.types.is_string(typ) or pa.types.is_large_string(typ)
                or pa.types.is_timestamp(typ) or pa.types.is_date(typ)):
            dropped[name] = f"unsupported type {typ}"
            continue
        if _is_row_index(col):
            dropped[name] = "row index (distinct consecutive integers)"
            continue
        cols.append(name)
        arrays.append(col)
    return pa.table(dict(zip(cols, arrays, strict=True))), dropped


def _leak_warnings(x: pd.DataFrame, y: np.ndarray) -> list[str]:
    out = []
    for c in x.columns:
        v = x[c]
        if isinstance(v.dtype, pd.CategoricalDtype):
            continue
        v = v.astype(float).fillna(v.min() - 1 if v.notna().any() else 0.0)
        if v.nunique() < 2:
            continue
        d = float(roc_auc_score(y, v.to_numpy()))
        if max(d, 1 - d) >= LEAK_AUC:
            out.append(f"column {c!r} alone ranks the target with AUC {max(d, 1 - d):.3f}: a leak? "
                       f"(exclude it if it is not known before the outcome)")
    return out


def _lgb_params(cfg: CreditRatingConfig, seed: int, overrides: dict | None) -> tuple[dict, int, int]:
    params, rounds, stop = lgb_params(cfg, overrides)
    params["seed"] = seed
    params.pop("monotone_constraints", None)  # no declared risk directions for external data
    params.pop("monotone_constraints_method", None)
    return params, rounds, stop


def _fit_one(feats: pa.Table, as_of: pd.Series, y: np.ndarray, fit_idx: np.ndarray, cal_idx: np.ndarray,
             test_idx: np.ndarray, cfg: CreditRatingConfig, params: dict, rounds: int, stop: int
             ) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Fit on fit_idx, early-stop and calibrate on cal_idx, score test_idx: (calibrated PD, raw, trees, cols)."""
    def rows(idx: np.ndarray) -> tuple[pa.Table, pd.Series]:
        return feats.take(pa.array(idx)), as_of.iloc[idx].reset_index(drop=True)

    def take(idx: np.ndarray, columns, cats):
        return to_matrix(*rows(idx), columns, cats, max_categories=cfg.features.max_categories)

    x_fit, cats = fitting_matrix(*rows(fit_idx), cfg)
    columns = list(x_fit.columns)
    if not columns:
        raise ZhouxinError("no usable feature columns left (all constant, unsupported or excluded)")
    x_cal, _ = take(cal_idx, columns, cats)
    x_test, _ = take(test_idx, columns, cats)
    dfit = lgb.Dataset(x_fit, y[fit_idx], categorical_feature=list(cats) or "auto", free_raw_data=True)
    dcal = lgb.Dataset(x_cal, y[cal_idx], reference=dfit)
    booster = fit_early_stopped(params, dfit, dcal, rounds, stop)
    trees = booster.best_iteration or booster.current_iteration()
    raw_cal = booster.predict(x_cal, num_iteration=trees)
    iso = fit_isotonic(raw_cal, y[cal_idx])
    raw = booster.predict(x_test, num_iteration=trees)
    return np.clip(iso.predict(raw), 1e-5, 1 - 1e-5), raw, trees, columns


def _fold_row(name: str, y: np.ndarray, p: np.ndarray, raw: np.ndarray, trees: int, n_fit: int,
              n_cal: int) -> dict:
    d = discrimination(y, p)
    return {"fold": name, "n": len(y), "events": int(y.sum()), "auc": d["auc"],
            "auc_raw": discrimination(y, raw)["auc"], "ks": d["ks"], "brier": d["brier"],
            "mean_pd": float(np.mean(p)), "event_rate": float(np.mean(y)), "trees": trees,
            "n_fit": n_fit, "n_calibration": n_cal}


def train_external(path: Path, target: str, time_col: str | None = None, folds: int = 5,
                   seed: int = DEFAULT_SEED, cfg: CreditRatingConfig | None = None, *,
                   exclude: Sequence[str] = (), lgb_overrides: dict | None = None) -> ExternalResult:
    """Evaluate the credit-rating pipeline on an external Parquet/CSV table with a binary 0/1 target."""
    t0 = time.perf_counter()
    path = Path(path)
    cfg = cfg or load_credit_rating_config()
    table = read_table(path)
    y = binary_target(table, target, path)
    missing = [c for c in exclude if c not in table.column_names]
    if missing:
        raise ZhouxinError(f"{path}: excluded column(s) not found: {', '.join(map(repr, missing))}")
    tvals = _time_values(table, time_col, path) if time_col else None
    feats, dropped = feature_table(table, target, time_col, exclude)
    if feats.num_columns == 0:
        raise ZhouxinError(f"{path}: no feature columns besides {target!r} ({dropped})")
    # dates become "days before the row's time" when there is a time column, else days before a constant
    as_of = (pd.Series(pd.to_datetime(tvals)) if tvals is not None and not pd.api.types.is_numeric_dtype(tvals)
             else pd.Series(pd.Timestamp("2000-01-01"), index=range(table.num_rows)))
    params, rounds, stop = _lgb_params(cfg, seed, lgb_overrides)
    n = table.num_rows
    oof = np.full(n, np.nan)
    fold_of_row = np.full(n, -1, dtype=np.int16)
    rows: list[dict] = []
    windows: dict[str, str] = {}
    x_all, _ = to_matrix(feats, as_of, max_categories=cfg.features.max_categories)
    for c in feats.column_names:
        if c not in x_all.columns:
            dropped[c] = f"string with more than {cfg.features.max_categories} distinct values"
    warn = _leak_warnings(x_all, y)
    n_events = int(y.sum())

    if tvals is None:
        mode = "stratified-cv"
        if folds < 2:
            raise ZhouxinError(f"folds must be at least 2 (got {folds})")
        if min(n_events, n - n_events) < folds * 2:
            raise ZhouxinError(f"{path}: target {target!r} has {min(n_events, n - n_events)} rows in its smaller "
                               f"class: too few for {folds}-fold stratified CV with an inner split")
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(skf.split(np.zeros(n), y)):
            fit_idx, cal_idx = train_test_split(tr, test_size=INNER_SHARE, stratify=y[tr], random_state=seed + k)
            p, raw, trees, _ = _fit_one(feats, as_of, y, np.sort(fit_idx), np.sort(cal_idx), te, cfg, params,
                                        rounds, stop)
            oof[te], fold_of_row[te] = p, k
            rows.append(_fold_row(str(k + 1), y[te], p, raw, trees, len(fit_idx), len(cal_idx)))
    else:
        mode = "out-of-time"
        order = np.argsort(tvals.to_numpy(), kind="stable")
        ts = tvals.to_numpy()[order]
        cut = ts[int(np.floor((1 - OOT_TEST_SHARE) * n))]
        test_idx = np.flatnonzero(tvals.to_numpy() >= cut)
        train_idx = np.flatnonzero(tvals.to_numpy() < cut)
        if len(train_idx) == 0:
            raise ZhouxinError(f"{path}: time column {time_col!r} has too few distinct values for an "
                               f"out-of-time split")
        tt = tvals.to_numpy()[train_idx]
        cal_cut = np.sort(tt)[int(np.floor((1 - INNER_SHARE) * len(tt)))]
        cal_idx, fit_idx = train_idx[tt >= cal_cut], train_idx[tt < cal_cut]
        for name, idx in (("test", test_idx), ("train", fit_idx), ("calibration", cal_idx)):
            if len(idx) == 0 or len(np.unique(y[idx])) < 2:
                raise ZhouxinError(f"{path}: the out-of-time {name} part (by {time_col!r}) has "
                                   f"{len(idx)} rows and {int(y[idx].sum()) if len(idx) else 0} events: "
                                   f"both classes are needed")
        p, raw, trees, _ = _fit_one(feats, as_of, y, fit_idx, cal_idx, test_idx, cfg, params, rounds, stop)
        oof[test_idx], fold_of_row[test_idx] = p, 0
        rows.append(_fold_row("out-of-time", y[test_idx], p, raw, trees, len(fit_idx), len(cal_idx)))
        tv = tvals.to_numpy()
        for name, idx in (("train", fit_idx), ("calibration", cal_idx), ("test", test_idx)):
            windows[name] = f"{pd.Series(tv[idx]).min()}..{pd.Series(tv[idx]).max()}"

    fold_df = pd.DataFrame(rows)
    tested = fold_of_row >= 0
    pooled = discrimination(y[tested], oof[tested])
    summary: dict[str, float] = {"folds": float(len(fold_df)), "rows": float(n), "events": float(n_events)}
    for m in ("auc", "auc_raw", "ks", "brier", "trees"):
        summary[f"{m}_mean"] = float(fold_df[m].mean())
        summary[f"{m}_sd"] = float(fold_df[m].std(ddof=1)) if len(fold_df) > 1 else float("nan")
    summary |= {"oof_auc": pooled["auc"], "oof_ks": pooled["ks"], "oof_brier": pooled["brier"]}
    grades = calibration_by_grade(y[tested], oof[tested])
    return ExternalResult(path=path, target=target, mode=mode, n_rows=n, n_events=n_events,
                          features=feats.column_names, dropped=dropped, folds=fold_df, summary=summary,
                          grades=grades, oof_pd=oof, fold_of_row=fold_of_row, warnings=warn, windows=windows,
                          seconds=time.perf_counter() - t0)
