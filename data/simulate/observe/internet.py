"""Third-party internet data: S34 news_sentiment and S35 recruitment (simulation.md §7.13).

News: a Poisson stream of articles per firm (volume rises with sales), labelled by a vendor whose
negative share rises with stress, plus a post-default burst of negative articles queued at default.
Recruitment: a monthly posting propensity driven by size, health relative to the firm's own level and
growth; open posts carry over. Links are clean here; the entity-resolution mislinks are dirty records
injected later (§8 D15).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from data.simulate.calendar import month_end, month_start, random_day_in_month
from data.simulate.context import MonthContext
from data.simulate.draws import lag_days, pick_rows
from data.simulate.emit import Emitter
from data.simulate.params import load_module_params
from kernel.catalog import load_catalog
from kernel.config import FrozenModel


class NewsParams(FrozenModel):
    base_rate: float
    sales_ref: float
    visibility_shape: float
    burst_prob: float
    burst_extra: float
    burst_months: int
    source_mix: dict[str, float]
    negative: tuple[float, float]
    positive_scale: float
    negative_topics: dict[str, float]
    stress_topics: tuple[str, ...]
    stress_topic_loading: float
    burst_topics: dict[str, float]
    positive_topics: dict[str, float]
    neutral_topics: dict[str, float]
    negative_severity: tuple[float, float]
    severity_stress: float
    other_severity: tuple[float, float]


class RecruitmentParams(FrozenModel):
    intercept: float
    size: float
    health: float
    growth: float
    new_posts_scale: float
    new_posts_power: float
    carry_over: float
    salary: dict[str, float]
    salary_growth: float
    salary_base_year: int
    salary_firm_logsd: float
    salary_month_logsd: float


class InternetParams(FrozenModel):
    stress_cap: float
    news: NewsParams
    recruitment: RecruitmentParams


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _weights(mapping: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array(list(mapping), dtype=object)
    w = np.array(list(mapping.values()), dtype=np.float64)
    return keys, w / w.sum()






class InternetModule:
    """S34 news articles and S35 recruitment postings (simulation.md §7.13)."""

    name = "internet"
    sub_items = ("news_sentiment", "recruitment")

    def setup(self, ctx: MonthContext, rng: np.random.Generator) -> None:
        self.rng = rng
        self.params: InternetParams = load_module_params(InternetParams, self.name)
        cat = load_catalog()
        self.news_lag = cat.sub_item("news_sentiment").lag_days
        self.rec_lag = cat.sub_item("recruitment").lag_days
        ent, names = ctx.ent, ctx.params.sector_names
        n = ent.n_max
        pn, pr = self.params.news, self.params.recruitment
        k = pn.visibility_shape
        visibility = rng.gamma(k, 1.0 / k, n)
        self.article_rate = pn.base_rate * (1 + np.log10(1 + ent.sales / pn.sales_ref)) * visibility
        self.burst_queue: dict[int, list[np.ndarray]] = defaultdict(list)
        self.sources, self.source_p = _weights(pn.source_mix)
        neg = list(pn.negative_topics)
        self.neg_topics = np.array(neg, dtype=object)
        self.neg_w = np.array([pn.negative_topics[x] for x in neg])
        self.neg_stress = np.isin(self.neg_topics, list(pn.stress_topics))
        self.burst_topics, self.burst_p = _weights(pn.burst_topics)
        self.pos_topics, self.pos_p = _weights(pn.positive_topics)
        self.neu_topics, self.neu_p = _weights(pn.neutral_topics)
        # recruitment
        sector_salary = np.array([pr.salary.get(s, pr.salary["default"]) for s in names])
        self.salary_level = sector_salary[ent.sector] * np.exp(pr.salary_firm_logsd * rng.standard_normal(n))
        self.active_posts = np.zeros(n, dtype=np.int64)
        self.post_base = pr.intercept + pr.size * np.log10(1 + ent.employees) + pr.growth * ent.growth
        self.new_posts_mean = pr.new_posts_scale * ent.employees ** pr.new_posts_power

    def step(self, ctx: MonthContext, out: Emitter) -> None:
        h = np.maximum(ctx.h, -self.params.stress_cap)
        st = np.maximum(0.0, -h)
        self._news(ctx, out, h, st)
        self._recruitment(ctx, out, h)

    # --- S34 ----------------------------------------------------------------------------------------
    def _news(self, ctx: MonthContext, out: Emitter, h: np.ndarray, st: np.ndarray) -> None:
        t, rng, p = ctx.t, self.rng, self.params.news
        if ctx.latent.defaulted_now.any():
            d = np.flatnonzero(ctx.latent.defaulted_now)
            d = d[rng.random(d.size) < p.burst_prob]
            k = 1 + rng.poisson(p.burst_extra, d.size)
            who = np.repeat(d, k)
            month = t + rng.integers(0, p.burst_months + 1, who.size)
            for m in np.unique(month):
                self.burst_queue[int(m)].append(who[month == m])
        parts = self.burst_queue.pop(t, [])
        burst = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        counts = rng.poisson(np.where(ctx.alive, self.article_rate, 0.0))
        background = np.repeat(np.arange(counts.size), counts)
        slot = np.concatenate([background, burst])
        m = slot.size
        if m == 0:
            return
        is_burst = np.arange(m) >= background.size
        s, hs = st[slot], h[slot]
        p_neg0 = _sigmoid(np.full(m, p.negative[0]))
        p_neg = _sigmoid(p.negative[0] + p.negative[1] * s)
        u = rng.random(m)
        negative = is_burst | (u < p_neg)
        positive = ~negative & (rng.random(m) < p.positive_scale * _sigmoid(hs))
        sentiment = np.where(negative, "negative", np.where(positive, "positive", "neutral")).astype(object)
        cause = np.where(is_burst, "cascade", np.where(negative & (u >= p_neg0), "stress", "background")).astype(object)
        # topics
        topic = np.empty(m, dtype=object)
        neg_bg = np.flatnonzero(negative & ~is_burst)
        w = self.neg_w[None, :] * np.where(self.neg_stress[None, :], 1 + p.stress_topic_loading * s[neg_bg, None], 1.0)
        topic[neg_bg] = self.neg_topics[pick_rows(rng, w)]
        topic[is_burst] = rng.choice(self.burst_topics, size=int(is_burst.sum()), p=self.burst_p)
        topic[positive] = rng.choice(self.pos_topics, size=int(positive.sum()), p=self.pos_p)
        neutral = ~negative & ~positive
        topic[neutral] = rng.choice(self.neu_topics, size=int(neutral.sum()), p=self.neu_p)
        a, b = p.negative_severity
        sev_neg = np.clip(rng.beta(a, b, m) * (1 + p.severity_stress * s), 0.0, 1.0)
        sev_other = rng.beta(*p.other_severity, m)
        severity = np.round(np.where(negative, sev_neg, sev_other), 4)
        source = rng.choice(self.sources, size=m, p=self.source_p)
        date = random_day_in_month(rng, t, size=m)
        date = self._unique_keys(slot, date, source, t)
        if not ctx.emit_events:
            return
        out.emit("news_sentiment", {
            "uscc": ctx.ent.uscc[slot], "publish_date": date, "source_type": source, "sentiment": sentiment,
            "topic": topic, "severity": severity,
        }, ent=slot, available=date + lag_days(rng, m, self.news_lag), cause=cause)

    @staticmethod
    def _unique_keys(slot: np.ndarray, date: np.ndarray, source: np.ndarray, t: int) -> np.ndarray:
        """Shift same-day, same-source articles of a firm by a day so that the catalog key stays unique."""
        first, last = month_start(t)[()], month_end(t)[()]
        date = date.copy()
        for _ in range(40):
            dup = pd.DataFrame({"s": slot, "d": date, "o": source}).duplicated().to_numpy()
            if not dup.any():
                break
            nxt = date[dup] + np.timedelta64(1, "D")
            date[dup] = np.where(nxt > last, first, nxt)
        return date

    # --- S35 ----------------------------------------------------------------------------------------
    def _recruitment(self, ctx: MonthContext, out: Emitter, h: np.ndarray) -> None:
        rng, p = self.rng, self.params.recruitment
        ent = ctx.ent
        n = ent.n_max
        can = np.flatnonzero(ctx.alive & ~ctx.latent.dormant)
        z = self.post_base[can] + p.health * (h[can] - ctx.mu[can])
        post = can[rng.random(can.size) < _sigmoid(z)]
        new = np.zeros(n, dtype=np.int64)
        new[post] = 1 + rng.poisson(self.new_posts_mean[post])
        open_ = np.flatnonzero(ctx.alive & (self.active_posts > 0))
        carried = np.zeros(n, dtype=np.int64)
        carried[open_] = rng.binomial(self.active_posts[open_], p.carry_over)
        self.active_posts = new + carried
        if not ctx.emit_series:
            return
        idx = np.flatnonzero(ctx.alive & (self.active_posts > 0))
        if idx.size == 0:
            return
        growth = (1 + p.salary_growth) ** (ctx.year - p.salary_base_year)
        salary = self.salary_level[idx] * growth * np.exp(p.salary_month_logsd * rng.standard_normal(idx.size))
        out.emit("recruitment", {
            "uscc": ent.uscc[idx], "period_month": np.full(idx.size, ctx.first_day),
            "active_job_posts": self.active_posts[idx], "new_job_posts": new[idx],
            "avg_offered_salary": np.round(salary, 0),
        }, ent=idx, available=ctx.last_day + lag_days(rng, idx.size, self.rec_lag), cause="background")
