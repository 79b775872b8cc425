"""Keys, consents and the audit chain on real databases (SQLite file and PostgreSQL), no service needed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.errors import ZhouxinError
from serving import audit
from serving.consent import grant_consent, live_consent, revoke_consent
from serving.keys import authenticate, issue_key, list_keys, revoke_key, rotate_key
from serving.operational import api_keys, audit_log, iso_utc

FIRM = "91330900MA2A00009P"
PURPOSES = ("loan_application", "post_loan_monitoring")


def test_keys_are_stored_hashed_and_rotate_with_a_grace_period(engine):
    key = issue_key(engine, "LSB1")
    caller = authenticate(engine, key)
    assert caller is not None and caller.institution_id == "LSB1"
    with engine.connect() as con:
        stored = con.execute(sa.select(api_keys)).mappings().all()
    assert len(stored) == 1 and key.split("_", 2)[2] not in json.dumps([dict(r) for r in stored])
    assert authenticate(engine, key[:-1] + ("A" if key[-1] != "A" else "B")) is None     # one character off
    assert authenticate(engine, None) is None and authenticate(engine, "Bearer x") is None
    new = rotate_key(engine, "LSB1", grace_days=7)
    assert authenticate(engine, key) is not None and authenticate(engine, new) is not None   # grace period
    old_id = key.split("_")[1]
    assert [k["expires_at"] is not None for k in list_keys(engine) if k["key_id"] == old_id] == [True]
    rotate_key(engine, "LSB1", grace_days=0)                   # no grace: older keys expire now
    assert authenticate(engine, key) is None and authenticate(engine, new) is None
    newest = issue_key(engine, "LSB2")
    revoke_key(engine, newest.split("_")[1])
    assert authenticate(engine, newest) is None
    with pytest.raises(ZhouxinError, match="not on the roster"):
        issue_key(engine, "NOBANK")


def test_consent_is_scoped_to_institution_purpose_scope_and_time(engine):
    cid = grant_consent(engine, FIRM, "LSB1", "loan_application", ["basic_profile"], 30, PURPOSES)
    assert live_consent(engine, "LSB1", FIRM, "loan_application", "basic_profile") == cid
    assert live_consent(engine, "LSB2", FIRM, "loan_application", "basic_profile") is None       # other bank
    assert live_consent(engine, "LSB1", FIRM, "post_loan_monitoring", "basic_profile") is None   # other purpose
    assert live_consent(engine, "LSB1", FIRM, "loan_application", "tax_data") is None            # narrower scope
    later = iso_utc(datetime.now(UTC) + timedelta(days=31))
    assert live_consent(engine, "LSB1", FIRM, "loan_application", "basic_profile", at=later) is None   # expired
    full = grant_consent(engine, FIRM, "LSB2", "loan_application", ["full_profile"], 30, PURPOSES)
    assert live_consent(engine, "LSB2", FIRM, "loan_application", "tax_data") == full             # full covers all
    revoke_consent(engine, cid)
    assert live_consent(engine, "LSB1", FIRM, "loan_application", "basic_profile") is None
    for bad, match in [({"uscc": FIRM[:-1] + "Q"}, "check character"), ({"institution_id": "X"}, "roster"),
                       ({"purpose": "fun"}, "purpose"), ({"scopes": ["everything"]}, "scope"), ({"days": 0}, "positive")]:
        args = {"uscc": FIRM, "institution_id": "LSB1", "purpose": "loan_application",
                "scopes": ["basic_profile"], "days": 30} | bad
        with pytest.raises(ZhouxinError, match=match):
            grant_consent(engine, purposes=PURPOSES, **args)


def _entry(i: int, **kw) -> audit.Entry:
    return audit.Entry(**({"request_id": f"RQ{i}", "route": "score", "status": 200, "institution_id": "LSB1",
                           "uscc": FIRM, "answer": audit.canonical({"grade": "A", "i": i})} | kw))


def test_audit_chain_verifies_and_names_the_first_altered_row(engine):
    receipts = [audit.append(engine, _entry(i)) for i in range(6)]
    report = audit.verify_chain(engine)
    assert report.ok and report.rows == 6
    assert audit.receipt(engine, receipts[2])["request_id"] == "RQ2"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as con:   # the database refuses
        con.execute(audit_log.update().where(audit_log.c.seq == 3).values(status=403))     # edits ...
    _drop_guards(engine)                                                 # ... unless someone removes the guard
    with engine.begin() as con:
        con.execute(audit_log.update().where(audit_log.c.seq == 3).values(answer='{"grade":"AAA"}'))
    bad = audit.verify_chain(engine)
    assert not bad.ok and bad.first_bad_seq == 3 and "altered" in bad.problem and bad.rows == 2
    with engine.begin() as con:
        con.execute(audit_log.delete().where(audit_log.c.seq >= 3))
        con.execute(audit_log.delete().where(audit_log.c.seq == 1))
    gone = audit.verify_chain(engine)
    assert not gone.ok and gone.first_bad_seq == 1 and "missing" in gone.problem


def _drop_guards(engine) -> None:
    with engine.begin() as con:
        if engine.dialect.name == "sqlite":
            con.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            con.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        else:
            con.execute(sa.text("DROP TRIGGER audit_log_no_change ON audit_log"))


def test_concurrent_writers_never_fork_the_chain(engine):
    def write(k: int) -> None:
        for i in range(25):
            audit.append(engine, _entry(1000 * k + i))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.verify_chain(engine)
    assert report.ok and report.rows == 100


WRITER = """
import sys
from serving import audit
from serving.operational import open_operational
eng = open_operational(sys.argv[1])
for i in range(int(sys.argv[3])):
    audit.append(eng, audit.Entry(request_id=f"RQ{sys.argv[2]}-{i}", route="score", status=200))
eng.dispose()
"""


def test_writers_in_separate_processes_never_fork_the_chain(engine):
    """Two service workers are two processes, each with its own connections: they queue on the chain's lock."""
    url = engine.url.render_as_string(hide_password=False)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(k), "30"], stderr=subprocess.PIPE)
             for k in range(3)]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    report = audit.verify_chain(engine)
    assert report.ok and report.rows == 90
    with engine.connect() as con:
        assert con.execute(sa.select(sa.func.count(sa.distinct(audit_log.c.request_id)))).scalar() == 90


def test_export_ends_with_the_head_hash(engine, tmp_path):
    for i in range(3):
        audit.append(engine, _entry(i))
    trailer = audit.export_jsonl(engine, tmp_path / "out" / "audit.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "out" / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and lines[-1]["trailer"] and lines[-1]["head_hash"] == lines[-2]["row_hash"]
    assert trailer["chain_ok"] and not (tmp_path / "out" / "audit.jsonl.partial").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["institution_id", "uscc", "status", "answer", "model_version", "time"]),
       value=st.one_of(st.text(min_size=1, max_size=12), st.integers(min_value=0, max_value=999)))
def test_any_change_to_any_field_changes_the_row_hash(field, value):
    row = {"seq": 7, "receipt_id": "RC_1", "request_id": "RQ_1", "time": "2026-12-05T00:00:00.000000Z",
           "institution_id": "LSB1", "key_id": "abc", "route": "score", "purpose": "loan_application",
           "uscc": FIRM, "status": 200, "consent_id": "CS_1", "model": "credit-rating", "model_version": "3",
           "features": '{"a":1}', "answer": '{"grade":"A"}'}
    changed = row | {field: value}
    if changed[field] == row[field]:
        return
    assert audit.row_hash("0" * 64, changed) != audit.row_hash("0" * 64, row)


GRADES = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "CC", "C"]


def test_an_override_of_more_than_one_notch_needs_a_reason_and_holds_for_its_model_version(engine):
    from serving.overrides import live_override, revoke_override, set_override

    args = dict(grades=GRADES, analyst="analyst-07", model="credit-rating", model_version="3")
    with pytest.raises(ZhouxinError, match="notches: write the reason"):
        set_override(engine, FIRM, "BB", "A", **args)                         # two notches, no reason
    with pytest.raises(ZhouxinError, match="nothing to override"):
        set_override(engine, FIRM, "A", "A", reason="no change at all here", **args)
    with pytest.raises(ZhouxinError, match="not on the master scale"):
        set_override(engine, FIRM, "D", "A", reason="default is not a grade to set", **args)
    with pytest.raises(ZhouxinError, match="analyst"):
        set_override(engine, FIRM, "AA", "A", **(args | {"analyst": " "}))
    near = set_override(engine, FIRM, "AA", "A", **args)                      # one notch: no reason needed
    assert live_override(engine, FIRM, "credit-rating", "3").override_id == near
    far = set_override(engine, FIRM, "B", "A", reason="main customer went bankrupt last week", **args)
    found = live_override(engine, FIRM, "credit-rating", "3")
    assert (found.override_id, found.grade, found.model_grade, found.analyst) == (far, "B", "A", "analyst-07")
    assert live_override(engine, FIRM, "credit-rating", "4") is None           # a new champion is judged afresh
    revoke_override(engine, far)
    assert live_override(engine, FIRM, "credit-rating", "3").override_id == near
    later = iso_utc(datetime.now(UTC) + timedelta(days=91))
    assert live_override(engine, FIRM, "credit-rating", "3", at=later) is None   # expired after 90 days
    with pytest.raises(ZhouxinError, match="no live override"):
        revoke_override(engine, far)


def test_the_service_engine_leaves_wal_checkpoints_to_its_owner_and_checkpoint_folds_the_log(tmp_path):
    """No request pays for a WAL checkpoint: the gateway's engine never autocheckpoints, its thread does."""
    from serving.operational import checkpoint, open_operational

    eng = open_operational(f"sqlite:///{tmp_path}/op.db", background_checkpoints=True)
    try:
        with eng.connect() as con:
            assert con.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        for i in range(150):
            audit.append(eng, _entry(i, features=audit.canonical({"values": {f"f{j}": j * 1.5 for j in range(300)}})))
        wal = tmp_path / "op.db-wal"
        assert wal.stat().st_size > 1000 * 4096          # past the default autocheckpoint: nothing folded it
        checkpoint(eng)
        with eng.connect() as con:
            busy, frames, done = con.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").first()
        assert busy == 0 and frames == done               # every frame of the log is in the database
        assert audit.verify_chain(eng).rows == 150
        for i in range(150, 400):                         # steady traffic with a checkpoint every 25 rows
            audit.append(eng, _entry(i, features=audit.canonical({"values": {f"f{j}": j * 1.5 for j in range(300)}})))
            if i % 25 == 0:
                assert checkpoint(eng)[0] == 0
        size = wal.stat().st_size
        assert size <= 64 * 2**20 and audit.verify_chain(eng).rows == 400
        frames_after = checkpoint(eng)[1]
        assert frames_after * 4096 < 0.5 * size or size < 8 * 2**20   # the log restarted instead of growing
    finally:
        eng.dispose()
    plain = open_operational(f"sqlite:///{tmp_path}/other.db")
    with plain.connect() as con:
        assert con.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000   # other tools: SQLite's default
    plain.dispose()
