"""The bank-facing service over real HTTP: `bentoml serve` in a subprocess on the small world.

Every request goes through the network stack, the auth middleware, BentoML's validation, the gateway,
the online store and the registered champion; assertions read only what a bank would see (status,
body, headers) plus the audit log and the `zhouxin` CLI an auditor would use.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from kernel.config import configs_dir
from kernel.profile import load_profile
from serving.config import load_serving_config
from serving.consent import grant_consent
from serving.keys import issue_key, revoke_key
from serving.operational import open_operational

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("small-built-features")]
BIN = Path(sys.executable).parent
UNKNOWN_FIRM = "91330900MA2A00009P"          # a valid USCC that no department ever reported


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(small_built_features, register_champion, tmp_path_factory):
    src, _ = small_built_features
    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(src, ws)
    version = register_champion(ws, seed=1, weight=1.0, force_champion=True)
    configs = tmp_path_factory.mktemp("configs") / "configs"
    shutil.copytree(configs_dir(), configs)
    cfg = yaml.safe_load((configs / "serving.yaml").read_text(encoding="utf-8"))
    (configs / "serving.yaml").write_text(yaml.safe_dump(cfg | {"reload_interval_s": 1}), encoding="utf-8")

    engine = open_operational(load_profile("local").operational.resolved(ws))
    mart = pd.read_parquet(ws / "features" / "sources" / "mart_indicators.parquet", columns=["uscc", "cci"])
    ev = pd.read_parquet(ws / "features" / "sources" / "mart_credit_events.parquet")
    last = ev[ev["event_timestamp"] == ev["event_timestamp"].max()]
    in_default = set(last.loc[last["in_default"].astype(bool), "uscc"])
    firms = sorted(set(mart.dropna()["uscc"]) - in_default)[:6]
    purposes = load_serving_config().purposes
    keys = {inst: issue_key(engine, inst) for inst in ("LSB1", "LSB2")}
    revoked = issue_key(engine, "LSB3")
    revoke_key(engine, revoked.split("_")[1])
    grant_consent(engine, firms[0], "LSB1", "loan_application", ["basic_profile"], 30, purposes)
    grant_consent(engine, firms[1], "LSB1", "loan_application", ["basic_profile"], 30, purposes,
                  starts=datetime.now(UTC) - timedelta(days=40))                      # expired 10 days ago
    grant_consent(engine, firms[2], "LSB1", "post_loan_monitoring", ["basic_profile"], 30, purposes)
    grant_consent(engine, firms[3], "LSB1", "loan_application", ["full_profile"], 30, purposes)
    defaulted = sorted(in_default)[0]                         # the small world has firms in default
    grant_consent(engine, defaulted, "LSB1", "loan_application", ["basic_profile"], 30, purposes)
    caps = pd.read_parquet(ws / "features" / "sources" / "mart_indicators.parquet",
                           columns=["uscc", "event_timestamp", "cci_cap"])
    caps = caps[caps["event_timestamp"] == caps["event_timestamp"].max()]
    capped = sorted(set(caps.loc[caps["cci_cap"] <= 55, "uscc"]) - in_default)[0]   # §1.3: no better than CCC
    grant_consent(engine, capped, "LSB1", "loan_application", ["basic_profile"], 30, purposes)
    engine.dispose()

    port = _free_port()
    env = os.environ | {"ZHOUXIN_WORKSPACE": str(ws), "ZHOUXIN_CONFIGS": str(configs), "ZHOUXIN_PROFILE": "local",
                        "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml-home")), "BENTOML_DO_NOT_TRACK": "True"}
    log = (ws / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "bentoml"), "serve", "serving.service:Zhouxin", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    else:
        proc.kill()
    if proc.poll() is not None or httpx.get(f"{url}/readyz", timeout=2).status_code != 200:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"service did not become ready:\n{(ws / 'serve.log').read_text()[-4000:]}")
    yield {"url": url, "ws": ws, "env": env, "firms": firms, "keys": keys, "revoked": revoked, "version": version,
           "defaulted": defaulted, "capped": capped}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _post(s, path: str, body, key: str | None = None, header: str = "bearer") -> httpx.Response:
    headers = {}
    if key and header == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif key:
        headers["X-API-Key"] = key
    data = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(f"{s['url']}{path}", content=data, headers=headers | {"Content-Type": "application/json"},
                      timeout=30)


def _audit_rows(s) -> int:
    con = sqlite3.connect(s["ws"] / "serving" / "operational.db")
    try:
        return con.execute("select count(*) from audit_log").fetchone()[0]
    finally:
        con.close()


def test_probes_and_api_description_are_open_everything_else_needs_a_key(served):
    s = served
    for path in ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(s["url"] + path, timeout=10).status_code == 200, path
    spec = httpx.get(s["url"] + "/docs.json", timeout=10).json()
    assert {"/v1/score", "/v1/score/batch", "/v1/profile"} <= set(spec["paths"])
    body = {"uscc": s["firms"][0], "purpose": "loan_application"}
    for key in (None, "zx_0000_nonsense", s["revoked"], s["keys"]["LSB1"][:-2]):
        r = _post(s, "/v1/score", body, key)
        assert r.status_code == 401, (key, r.text)
        assert "API key" in r.json()["detail"] and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "pd12" not in r.text
    assert _post(s, "/v1/score", body, s["keys"]["LSB1"], header="x-api-key").status_code == 200


def test_score_answers_pd_score_grade_reasons_and_sub_indices(served):
    s = served
    r = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"])
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["uscc"] == s["firms"][0] and a["model"] == {"name": "credit-rating", "version": s["version"]}
    assert a["in_default"] is False
    assert 0 < a["pd12"] < 1 and a["grade"] in {"AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"}
    expected = round(600 + 50 / math.log(2) * math.log((1 - a["pd12"]) / a["pd12"] / 50))
    assert abs(a["score"] - min(1000, max(0, expected))) <= 1          # pd12 in the body is rounded to 1e-6
    assert set(a["credit_index"]["sub_indices"]) == {"A", "B", "C", "D", "E"}
    assert a["data_as_of"].startswith("2018-12-31")
    assert all(set(x) == {"code", "zh", "en"} for x in a["reasons"])
    assert r.headers["X-Zhouxin-Receipt"] == a["receipt_id"]
    mart = pd.read_parquet(s["ws"] / "features" / "sources" / "mart_indicators.parquet")
    last = mart[mart["uscc"] == s["firms"][0]].sort_values("event_timestamp").iloc[-1]
    assert a["credit_index"]["cci"] == pytest.approx(float(last["cci"]), rel=1e-5)   # the online value


def test_a_firm_in_default_is_grade_d_and_not_scored(served):
    s = served
    r = _post(s, "/v1/score", {"uscc": s["defaulted"], "purpose": "loan_application"}, s["keys"]["LSB1"])
    assert r.status_code == 200, r.text
    a = r.json()
    assert (a["grade"], a["pd12"], a["score"], a["in_default"]) == ("D", 1.0, None, True)
    assert [x["code"] for x in a["reasons"]] == ["serious_credit_event"]
    healthy = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"]).json()
    assert healthy["in_default"] is False or healthy["grade"] == "D"


def test_a_firm_under_a_veto_cap_is_rated_no_better_than_the_cap_allows(served):
    """ratings_and_signals §1.3: restriction / tax D / non-normal taxpayer -> at most CCC; dishonest -> CC."""
    s = served
    a = _post(s, "/v1/score", {"uscc": s["capped"], "purpose": "loan_application"}, s["keys"]["LSB1"]).json()
    grades = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]
    assert a["rating_cap"] in {"cap_restriction_or_tax_d", "cap_dishonest_or_serious_illegal",
                               "cap_revoked_or_liquidating"}
    worst_allowed = "CCC" if a["rating_cap"] == "cap_restriction_or_tax_d" else "CC"
    assert grades.index(a["grade"]) >= grades.index(worst_allowed)
    assert a["reasons"][0]["code"] == a["rating_cap"] and a["model_pd12"] <= a["pd12"]
    healthy = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"]).json()
    assert healthy["rating_cap"] is None or healthy["model_pd12"] <= healthy["pd12"]


def test_an_analysts_override_sets_the_grade_with_its_reason_until_revoked(served):
    """§1.3: an override of more than one notch needs a written reason; the bank sees the analyst's grade,
    the model's grade and the reason, the audit row records it, and revoking restores the model's grade."""
    from typer.testing import CliRunner

    from serving.overrides import list_overrides
    from zhouxin.cli import app

    s = served
    firm, key = s["firms"][0], s["keys"]["LSB1"]
    before = _post(s, "/v1/score", {"uscc": firm, "purpose": "loan_application"}, key).json()
    grades = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]
    i = grades.index(before["grade"])
    target = grades[i + 3] if i + 3 < len(grades) else grades[i - 3]
    cmd = ["serve", "override", "set", "--uscc", firm, "--grade", target, "--analyst", "risk-officer-12",
           "--workspace", str(s["ws"])]
    refused = CliRunner().invoke(app, cmd)
    assert refused.exit_code == 2 and "write the reason" in refused.output
    done = CliRunner().invoke(app, [*cmd, "--reason", "court froze the main account on 2018-12-20"])
    assert done.exit_code == 0, done.output
    engine = open_operational(load_profile("local").operational.resolved(s["ws"]))
    oid = list_overrides(engine, firm)[-1]["override_id"]

    r = _post(s, "/v1/score", {"uscc": firm, "purpose": "loan_application"}, key)
    a = r.json()
    assert a["grade"] == target and a["override"] == {
        "override_id": oid, "grade": target, "model_grade": before["grade"],
        "reason": "court froze the main account on 2018-12-20", "analyst": "risk-officer-12"}
    expected = round(600 + 50 / math.log(2) * math.log((1 - a["pd12"]) / a["pd12"] / 50))
    assert abs(a["score"] - min(1000, max(0, expected))) <= 1 and a["model_pd12"] == before["model_pd12"]
    con = sqlite3.connect(s["ws"] / "serving" / "operational.db")
    logged = con.execute("select answer from audit_log where receipt_id = ?", (a["receipt_id"],)).fetchone()[0]
    con.close()
    assert json.loads(logged)["override"]["override_id"] == oid
    profile = _post(s, "/v1/profile", {"uscc": firm, "purpose": "loan_application"}, key).json()
    assert profile["rating"]["grade"] == target and profile["rating"]["override"]["override_id"] == oid

    assert CliRunner().invoke(app, ["serve", "override", "revoke", oid, "--workspace", str(s["ws"])]).exit_code == 0
    after = _post(s, "/v1/score", {"uscc": firm, "purpose": "loan_application"}, key).json()
    assert after["grade"] == before["grade"] and after["override"] is None
    engine.dispose()


def test_without_a_live_consent_the_answer_is_403_and_reveals_nothing(served):
    s = served
    key = s["keys"]["LSB1"]
    known_unconsented = _post(s, "/v1/score", {"uscc": s["firms"][4], "purpose": "loan_application"}, key)
    unknown = _post(s, "/v1/score", {"uscc": UNKNOWN_FIRM, "purpose": "loan_application"}, key)
    other_bank = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB2"])
    expired = _post(s, "/v1/score", {"uscc": s["firms"][1], "purpose": "loan_application"}, key)
    wrong_purpose = _post(s, "/v1/score", {"uscc": s["firms"][2], "purpose": "loan_application"}, key)
    profile = _post(s, "/v1/profile", {"uscc": s["firms"][4], "purpose": "loan_application"}, key)
    for r in (known_unconsented, unknown, other_bank, expired, wrong_purpose, profile):
        assert r.status_code == 403, r.text
        assert set(r.json()) <= {"uscc", "error", "detail", "receipt_id"}
    strip = lambda r: {k: v for k, v in r.json().items() if k not in ("receipt_id", "uscc")}   # noqa: E731
    assert strip(known_unconsented) == strip(unknown) == strip(expired)            # existence does not leak
    assert _post(s, "/v1/score", {"uscc": s["firms"][2], "purpose": "post_loan_monitoring"}, key).status_code == 200
    assert _post(s, "/v1/score", {"uscc": s["firms"][3], "purpose": "loan_application"}, key).status_code == 200


def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(served):
    s = served
    key, firm = s["keys"]["LSB1"], s["firms"][0]
    before = _audit_rows(s)
    cases = [
        ("/v1/score", {"uscc": firm[:-1] + ("0" if firm[-1] != "0" else "1"), "purpose": "loan_application"}, "uscc"),
        ("/v1/score", {"uscc": firm[:10], "purpose": "loan_application"}, "uscc"),
        ("/v1/score", {"uscc": firm}, "purpose"),
        ("/v1/score", {"uscc": firm, "purpose": "curiosity"}, "purpose"),
        ("/v1/score", {"uscc": firm, "purpose": "loan_application", "debug": True}, "debug"),
        ("/v1/score", "{not json", None),
        ("/v1/score/batch", {"usccs": [], "purpose": "loan_application"}, "usccs"),
        ("/v1/profile", {"uscc": 12345, "purpose": "loan_application"}, "uscc"),
    ]
    for path, body, field in cases:
        r = _post(s, path, body, key)
        assert r.status_code == 400, (body, r.text)
        if field:
            assert any(field in d["loc"] for d in r.json()["detail"]), r.text
    too_many = {"usccs": [firm] * (load_serving_config().batch_max_items + 1), "purpose": "loan_application"}
    r = _post(s, "/v1/score/batch", too_many, key)
    assert r.status_code == 400 and "at most" in r.json()["detail"]
    r = _post(s, "/v1/score/batch", {"usccs": [firm, firm], "purpose": "loan_application"}, key)
    assert r.status_code == 400 and "more than once" in r.json()["detail"]
    assert _audit_rows(s) == before                          # rejected input leaves no half-written trace


def test_batch_answers_each_firm_with_its_own_status_and_receipt(served):
    s = served
    r = _post(s, "/v1/score/batch", {"usccs": [s["firms"][0], s["firms"][4], UNKNOWN_FIRM],
                                     "purpose": "loan_application"}, s["keys"]["LSB1"])
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["status"] for i in items] == [200, 403, 403]
    assert items[0]["answer"]["grade"] and items[1]["answer"] is None and items[1]["error"] == "forbidden"
    assert len({i["receipt_id"] for i in items}) == 3
    single = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"]).json()
    assert items[0]["answer"]["pd12"] == single["pd12"]


def test_profile_is_one_enterprise_one_file(served):
    s = served
    r = _post(s, "/v1/profile", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"])
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["registration"]["ent_name"] and p["registration"]["establish_date"]
    assert {"eq_actual_controller_id", "eq_group_size"} <= set(p["ownership"])
    assert len(p["indicators"]) == 49 and set(p["credit_index"]) >= {"cci", "idx_A", "idx_E"}
    single = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"]).json()
    assert p["rating"]["pd12"] == single["pd12"] and p["rating"]["grade"] == single["grade"]


def _zhouxin(s, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "zhouxin"), *args], env=s["env"], capture_output=True, text=True, timeout=300)


def test_audit_chain_verifies_replay_reproduces_and_tampering_is_caught(served, tmp_path):
    s = served
    r = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"}, s["keys"]["LSB1"])
    receipt = r.json()["receipt_id"]
    denied = _post(s, "/v1/score", {"uscc": s["firms"][4], "purpose": "loan_application"}, s["keys"]["LSB1"])
    ok = _zhouxin(s, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    rows = json.loads("[" + ",".join(_zhouxin(s, "audit", "query", "--uscc", s["firms"][0], "--institution",
                                              "LSB1", "--limit", "1000", "--json").stdout.splitlines()) + "]")
    assert receipt in {x["receipt_id"] for x in rows} and all(x["institution_id"] == "LSB1" for x in rows)
    mine = next(x for x in rows if x["receipt_id"] == receipt)
    assert mine["model_version"] == s["version"] and json.loads(mine["features"])["values"]
    replay = _zhouxin(s, "replay", receipt, "--json")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert json.loads(replay.stdout)["matches"] is True
    assert _zhouxin(s, "replay", denied.json()["receipt_id"], "--json").returncode == 0

    copy = tmp_path / "ws"                                      # tamper with a copy, as an insider would
    (copy / "serving").mkdir(parents=True)
    src = sqlite3.connect(s["ws"] / "serving" / "operational.db")
    dst = sqlite3.connect(copy / "serving" / "operational.db")
    src.backup(dst)
    src.close()
    dst.execute("drop trigger audit_log_no_update")
    dst.execute("update audit_log set answer = replace(answer, '\"grade\":\"', '\"grade\":\"A') "
                "where receipt_id = ?", (receipt,))
    dst.commit()
    seq = dst.execute("select seq from audit_log where receipt_id = ?", (receipt,)).fetchone()[0]
    dst.close()
    bad = _zhouxin(s, "audit", "verify", "--workspace", str(copy))
    assert bad.returncode == 1 and f"row {seq}" in bad.stdout, bad.stdout


def test_schemathesis_finds_no_server_error(served, tmp_path):
    s = served
    r = subprocess.run([str(BIN / "schemathesis"), "run", f"{s['url']}/docs.json", "--checks", "not_a_server_error",
                        "-H", f"Authorization: Bearer {s['keys']['LSB1']}", "--max-examples", "40", "--seed", "7",
                        "--phases", "examples,coverage,fuzzing", "--report", "junit",
                        "--report-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, env=s["env"], cwd=tmp_path)   # its cache
    assert r.returncode == 0, r.stdout[-6000:]


def test_a_newly_promoted_champion_is_served_without_restart(served, register_champion):
    s = served
    v2 = register_champion(s["ws"], seed=2, weight=2.0, force_champion=True)
    deadline, seen = time.time() + 60, None
    while time.time() < deadline:
        seen = _post(s, "/v1/score", {"uscc": s["firms"][0], "purpose": "loan_application"},
                     s["keys"]["LSB1"]).json()["model"]["version"]
        if seen == v2:
            break
        time.sleep(0.5)
    assert seen == v2 != s["version"]


def test_the_champion_artefact_loads_without_the_training_package(served):
    s = served
    uri = load_profile("local").mlflow.resolved(s["ws"])[0]
    code = ("import sys; sys.modules['training'] = None\n"        # any `import training...` now fails
            "import json, mlflow, pandas as pd\n"
            f"mlflow.set_tracking_uri({uri!r})\n"
            f"m = mlflow.pyfunc.load_model('models:/credit-rating/{s['version']}')\n"
            "rows = {f'mart_indicators__idx_{k}': [60.0, 60.0] for k in 'ABCDE'}\n"
            "rows |= {'mart_indicators__cci': [20.0, 90.0], 'ent_registration__establish_date': [4000.0, 4000.0],\n"
            "         'ent_registration__enterprise_scale': ['small', 'small']}\n"
            "out = m.predict(pd.DataFrame(rows))\n"
            "print(json.dumps(out['pd12'].tolist()))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=s["env"])
    assert r.returncode == 0, r.stderr[-3000:]
    pds = json.loads(r.stdout.strip().splitlines()[-1])
    assert pds[0] > pds[1]                                     # a low CCI means a higher PD
