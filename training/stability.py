"""§1.3 stability of the published monthly rating: at most N notches a month unless a severe rule fired.

The point-in-time grade (PD -> caps -> grade) answers "how risky is this firm now"; the published monthly
series a bank books against must not whipsaw. Each firm's published grade is clamped to within N notches
of its published grade the month before (when it was scored that month), except in a month where a level
>= 6 rule fired. The published PD is the point-in-time PD moved into the published grade's band, so PD,
score and grade still agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.scale import RatingScale, grade_index, load_rating_scale


@dataclass(frozen=True)
class Published:
    """The published series, aligned with the input rows."""

    pd12: np.ndarray
    grade: np.ndarray
    held: np.ndarray          # True where stability moved the grade away from the point-in-time one


def newly_severe(uscc: pd.Series, as_of: pd.Series, cci_cap: np.ndarray, severe_at_most: float) -> np.ndarray:
    """Months in which a severe veto cap (at or below `severe_at_most`) newly applies or tightens: the
    level >= 6 rules the caps code (restriction, tax D, non-normal taxpayer, dishonest, serious illegal,
    revoked). Firms not scored the month before count as new."""
    frame = pd.DataFrame({"uscc": uscc.to_numpy(), "m": pd.to_datetime(as_of).dt.to_period("M").to_numpy(),
                          "cap": np.asarray(cci_cap, dtype=float)})
    prev = frame.assign(m=frame["m"] + 1).rename(columns={"cap": "prev"}).drop_duplicates(["uscc", "m"])
    merged = frame.merge(prev, on=["uscc", "m"], how="left")
    cap, before = merged["cap"].to_numpy(), merged["prev"].to_numpy()
    return (cap <= severe_at_most) & (np.isnan(before) | (cap < before))


def publish(uscc: pd.Series, as_of: pd.Series, pd12: np.ndarray, exempt: np.ndarray,
            scale: RatingScale | None = None) -> Published:
    """Clamp each firm's monthly grade to within the configured notches of its previous published month."""
    scale = scale or load_rating_scale()
    names = list(scale.grade_names)
    raw = grade_index(pd12, scale)
    out = raw.copy()
    if scale.stability is not None and len(raw):
        n = scale.stability.max_notches_per_month
        months = pd.to_datetime(as_of).dt.to_period("M").to_numpy()
        firms = uscc.to_numpy()
        previous: pd.Series = pd.Series(dtype=float)
        previous_month = None
        for m in sorted(set(months)):
            rows = np.flatnonzero(months == m)
            if previous_month is not None and m == previous_month + 1:
                prev = previous.reindex(firms[rows]).to_numpy()
                clamp = ~np.isnan(prev) & ~np.asarray(exempt, dtype=bool)[rows]
                lo, hi = prev - n, prev + n
                out[rows] = np.where(clamp, np.clip(raw[rows], lo, hi), raw[rows]).astype(int)
            previous = pd.Series(out[rows].astype(float), index=firms[rows])
            previous_month = m
    lower = np.array([scale.band(g)[0] for g in names])
    upper = np.array([np.nextafter(scale.band(g)[1], 0) for g in names])
    published_pd = np.clip(np.asarray(pd12, dtype=float), lower[out], upper[out])
    return Published(pd12=published_pd, grade=np.asarray(names, dtype=object)[out], held=out != raw)
