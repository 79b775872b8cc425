"""S34 news_sentiment and S35 recruitment (simulation.md §7.13) on a seeded small world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.simulate.calendar import date_to_month
from data.simulate.harness import run_small_world
from data.simulate.observe.internet import InternetModule
from kernel.catalog import load_catalog


class AliveProbe:
    """Records which slots were alive in each calendar year."""

    name = "probe"
    sub_items: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.alive_by_year: dict[int, np.ndarray] = {}

    def setup(self, ctx, rng) -> None:
        return None

    def step(self, ctx, out) -> None:
        a = self.alive_by_year.setdefault(ctx.year, np.zeros(ctx.ent.n_max, dtype=bool))
        a |= ctx.alive


@pytest.fixture(scope="module")
def world():
    probe = AliveProbe()
    sim, sink = run_small_world([InternetModule(), probe], enterprises=2500, start="2018-01", end="2021-12", seed=11)
    return sim, sink.frame("news_sentiment"), sink.frame("recruitment"), probe


def test_fields_follow_the_catalog(world):
    _, news, rec, _ = world
    cat = load_catalog()
    for code, f in (("news_sentiment", news), ("recruitment", rec)):
        spec = cat.sub_item(code)
        assert len(f) > 500
        assert [c for c in f.columns if not c.startswith("_")] == list(spec.field_names)
        for fs in spec.fields:
            col = f[fs.name]
            assert col.notna().all(), (code, fs.name)
            if fs.dtype == "category":
                assert set(col.unique()) <= set(fs.allowed), (code, fs.name)
            elif fs.dtype == "date":
                assert pd.api.types.is_datetime64_any_dtype(col), (code, fs.name)
            elif fs.dtype in ("int", "float"):
                assert pd.api.types.is_numeric_dtype(col), (code, fs.name)
                if fs.min is not None:
                    assert (col >= fs.min).all(), (code, fs.name)
                if fs.max is not None:
                    assert (col <= fs.max).all(), (code, fs.name)
        assert not f.duplicated(list(spec.key)).any(), code
    lo, hi = cat.sub_item("news_sentiment").lag_days
    assert (news["_available_date"] - news["publish_date"]).dt.days.between(lo, hi).all()
    lo, hi = cat.sub_item("recruitment").lag_days
    month_end = rec["period_month"] + pd.offsets.MonthEnd(0)
    assert (rec["_available_date"] - month_end).dt.days.between(lo, hi).all()
    assert (rec["period_month"].dt.day == 1).all()
    assert news["publish_date"].min() >= np.datetime64("2015-01-01")     # event lists from t_events
    assert rec["period_month"].min() == np.datetime64("2017-01-01")      # series from t_series


def test_article_coverage_and_labels(world):
    sim, news, _, probe = world
    year = news["publish_date"].dt.year
    for y in (2018, 2019, 2020):
        alive = probe.alive_by_year[y]
        has = np.zeros(sim.ent.n_max, dtype=bool)
        has[news.loc[year == y, "_ent"].to_numpy()] = True
        assert 0.28 < (has & alive).sum() / alive.sum() < 0.42       # catalog: 35% have >= 1 article a year
    st = sim.latent.state
    healthy = news[(st.tau[news["_ent"].to_numpy()] < 0)]
    mix = healthy["sentiment"].value_counts(normalize=True)
    assert 0.1 < mix["negative"] < 0.22                              # sigma(-2.2 + 0.9 st), catalog 15%
    assert 0.05 < mix["positive"] < 0.2
    src = news["source_type"].value_counts(normalize=True)
    assert src["social_media"] == pytest.approx(0.45, abs=0.04)
    assert src["mainstream_media"] == pytest.approx(0.25, abs=0.04)
    neg = news[news["sentiment"] == "negative"]
    assert set(neg["topic"]) <= {"debt_default", "operating_difficulty", "wage_arrears", "litigation",
                                 "environment_safety", "product_quality", "other"}
    assert set(news.loc[news["sentiment"] == "positive", "topic"]) <= {"expansion_investment", "award_honor"}
    assert set(news.loc[news["sentiment"] == "neutral", "topic"]) <= {"other", "executive_change"}
    assert 0.35 < healthy.loc[healthy["sentiment"] == "negative", "severity"].mean() < 0.65
    assert healthy.loc[healthy["sentiment"] != "negative", "severity"].mean() == pytest.approx(1.5 / 5.5, abs=0.04)
    # bigger firms are written about more often
    sales = sim.ent.sales
    per_firm = np.bincount(news["_ent"].to_numpy(), minlength=sim.ent.n_max)
    born = st.born
    big = born & (sales > np.quantile(sales[born], 0.8))
    small = born & (sales < np.quantile(sales[born], 0.2))
    assert per_firm[big].mean() > 1.2 * per_firm[small].mean()


def test_negative_news_leads_default(world):
    """Stress raises the negative share before the default month."""
    sim, news, _, _ = world
    st = sim.latent.state
    m = date_to_month(news["publish_date"].to_numpy())
    tau = st.tau[news["_ent"].to_numpy()]
    before = news[(tau >= 0) & (m < tau) & (m >= tau - 12) & (news["_cause"] != "cascade")]
    never = news[tau < 0]
    assert len(before) > 30
    assert (before["sentiment"] == "negative").mean() > 1.5 * (never["sentiment"] == "negative").mean()


def test_post_default_burst(world):
    sim, news, _, _ = world
    st = sim.latent.state
    burst = news[news["_cause"] == "cascade"]
    assert (burst["sentiment"] == "negative").all()
    slot = burst["_ent"].to_numpy()
    lag = date_to_month(burst["publish_date"].to_numpy()) - st.tau[slot]
    single = st.tau[slot] == st.last_default[slot]
    assert single.sum() > 50
    assert ((lag[single] >= 0) & (lag[single] <= 3)).all()           # [tau, tau + 3 months]
    d = np.flatnonzero((st.tau >= sim.params.t_events) & (st.tau <= sim.params.t_end - 3))
    share = np.isin(d, slot).mean()
    assert 0.15 < share < 0.36                                        # pi = 0.25
    per_burst = burst.groupby("_ent").size()
    assert 2.0 < per_burst.mean() < 4.5                               # 1 + Pois(2) (more for re-defaults)


def test_recruitment(world):
    sim, _, rec, probe = world
    year = rec["period_month"].dt.year
    for y in (2018, 2019, 2020):
        alive = probe.alive_by_year[y]
        posted = np.zeros(sim.ent.n_max, dtype=bool)
        posted[rec.loc[(year == y) & (rec["new_job_posts"] > 0), "_ent"].to_numpy()] = True
        assert 0.2 < (posted & alive).sum() / alive.sum() < 0.42     # ~30% of firms post in a year (seed: 0.26-0.38)
    assert (rec["active_job_posts"] >= 1).all()
    assert (rec["active_job_posts"] >= rec["new_job_posts"]).all()
    new = rec.loc[rec["new_job_posts"] > 0, "new_job_posts"]
    assert new.min() >= 1 and 1 <= new.median() <= 3
    # open posts carry over and fade (not stuck at 1 forever)
    g = rec.sort_values(["uscc", "period_month"], kind="stable")
    m = pd.Series(date_to_month(g["period_month"].to_numpy()), index=g.index)
    cont = g["uscc"].eq(g["uscc"].shift()) & m.diff().eq(1)
    carried = g["active_job_posts"] - g["new_job_posts"]
    assert (carried[cont] <= g["active_job_posts"].shift()[cont]).all()
    later = g["period_month"] > np.datetime64("2017-01-01")         # posts opened before the first series month
    assert (carried[~cont & later] == 0).all()
    run_len = cont.groupby((~cont).cumsum()).size()
    assert run_len.max() < 36
    assert (g["new_job_posts"] == 0).mean() < 0.8
    # larger firms post more
    emp = sim.ent.employees[rec["_ent"].to_numpy()]
    assert rec.loc[emp >= 50, "new_job_posts"].mean() > rec.loc[emp <= 5, "new_job_posts"].mean()
    # salaries: sector levels growing 4% a year
    med = rec.groupby(year)["avg_offered_salary"].median()
    assert med[2020] / med[2018] == pytest.approx(1.04 ** 2, abs=0.03)
    names = np.array(sim.params.sector_names)[sim.ent.sector][rec["_ent"].to_numpy()]
    by = rec.groupby(names)["avg_offered_salary"].median()
    assert by["shipping_port_logistics"] > by["services_other"] > by["tourism_hospitality"]
    assert rec["avg_offered_salary"].between(2500, 15000).all()


def test_no_posts_from_dead_or_dormant_firms(world):
    sim, _, rec, _ = world
    st = sim.latent.state
    m = date_to_month(rec["period_month"].to_numpy())
    slot = rec["_ent"].to_numpy()
    assert (m >= sim.ent.birth_month[slot]).all()
    gone = ~st.alive[slot] & st.born[slot]
    assert not (gone & (m > st.status_change_month[slot])).any()
    dormant_new = st.dormant[slot] & (m > st.last_default[slot]) & (rec["new_job_posts"] > 0).to_numpy()
    assert not dormant_new.any()


def test_deterministic_for_a_seed():
    def run(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        _, sink = run_small_world([InternetModule()], enterprises=300, start="2016-01", end="2017-06", seed=seed)
        return sink.frame("news_sentiment"), sink.frame("recruitment")

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    assert not a[0]["publish_date"].equals(c[0]["publish_date"])
