"""Months as integers: index = year * 12 + (month - 1). Cheap to vectorise and to compare."""

from __future__ import annotations

import numpy as np


def month_index(label: str) -> int:
    """'2018-01' -> 24216."""
    year, month = label.split("-")[:2]
    return int(year) * 12 + int(month) - 1


def month_label(t: int) -> str:
    return f"{t // 12:04d}-{t % 12 + 1:02d}"


def year_of(t: int | np.ndarray) -> int | np.ndarray:
    return t // 12


def month_of_year(t: int | np.ndarray) -> int | np.ndarray:
    """1..12."""
    return t % 12 + 1


def month_start(t: int | np.ndarray) -> np.ndarray:
    """First day of month t as datetime64[D]."""
    t = np.asarray(t)
    return ((t // 12 - 1970) * 12 + t % 12).astype("datetime64[M]").astype("datetime64[D]")


def month_end(t: int | np.ndarray) -> np.ndarray:
    """Last day of month t as datetime64[D]."""
    return month_start(np.asarray(t) + 1) - np.timedelta64(1, "D")


def days_in_month(t: int | np.ndarray) -> np.ndarray:
    return (month_start(np.asarray(t) + 1) - month_start(t)).astype(int)


def random_day_in_month(rng: np.random.Generator, t: int | np.ndarray, size: int | None = None) -> np.ndarray:
    """A uniform day within month t (vectorised over t or over `size` draws for one month)."""
    t_arr = np.asarray(t)
    if size is not None and t_arr.ndim == 0:
        t_arr = np.full(size, int(t_arr))
    start = month_start(t_arr)
    offsets = np.floor(rng.random(t_arr.shape) * days_in_month(t_arr)).astype("timedelta64[D]")
    return start + offsets


def date_to_month(d: np.ndarray) -> np.ndarray:
    """datetime64[D] -> month index (NaT gives a very negative number: mask first)."""
    m = np.asarray(d).astype("datetime64[M]").astype(np.int64)
    return m + 1970 * 12


def add_days(d: np.ndarray, days: np.ndarray | int) -> np.ndarray:
    return np.asarray(d) + np.asarray(days).astype("timedelta64[D]")


def add_months(d: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Add whole months to dates, keeping the day (clipped at month end)."""
    d = np.asarray(d, dtype="datetime64[D]")
    m = d.astype("datetime64[M]")
    day = (d - m.astype("datetime64[D]")).astype(int)
    target = m + np.asarray(months).astype("timedelta64[M]")
    last = (target + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    out = target.astype("datetime64[D]") + np.asarray(day).astype("timedelta64[D]")
    return np.minimum(out, last)
