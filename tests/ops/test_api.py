"""The role-based API (issue 6 items 4-6) on SQLite and PostgreSQL: who sees what, the access
log of every read, JSON errors for bad input, and a citizen's appeal end to end."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from qamqor.api.app import create_app
from qamqor.api.queries import MIN_CELL
from qamqor.cli import app as cli
from qamqor.ops.access_log import seal
from qamqor.ops.daily import publish_and_sync
from qamqor.ops.demo import DEFAULT_PASSWORD, seed_demo_users
from qamqor.store.access import AccessLogEntry, User
from qamqor.store.db import ENV, session_factory
from qamqor.store.published import FamilyCard

RUN_DATE = date(2025, 10, 1)
XROAD = {"X-Road-Client": "KZ/GOV/MTSZN/ASP", "X-Road-Service": "KZ/GOV/MLSPP/QAMQOR/search"}


@pytest.fixture
def api(nation, store_url):
    publish_and_sync(nation, RUN_DATE, store_url)
    seed_demo_users(session_factory(store_url))
    client = TestClient(create_app(nation, store_url))
    client.store_url = store_url
    return client


def login(api: TestClient, user: str) -> dict:
    r = api.post("/auth/token", data={"username": user, "password": DEFAULT_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _user(api, name: str) -> User:
    with session_factory(api.store_url)() as s:
        return s.get(User, name)


def test_sign_in_errors_are_json_401(api):
    r = api.post("/auth/token", data={"username": "worker", "password": "wrong"})
    assert r.status_code == 401 and "wrong" in r.json()["detail"]
    assert api.get("/me/family").status_code == 401
    r = api.get("/me/family", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["detail"] == "the token is not valid"


def test_worker_reaches_only_their_district(api):
    w = login(api, "worker")
    me = _user(api, "worker")
    with session_factory(api.store_url)() as s:
        own = s.scalar(select(FamilyCard.family_id).where(FamilyCard.district == me.district))
        other = s.scalar(select(FamilyCard.family_id).where(FamilyCard.district != me.district))
    assert api.get(f"/families/{own}", headers=w).json()["district"] == me.district
    assert api.get(f"/families/{other}", headers=w).status_code == 404
    assert api.get(f"/families/{other}/explanation", headers=w).status_code == 404
    queue = api.get("/worker/queue", headers=w).json()["cases"]
    assert queue and all(c["district"] == me.district for c in queue)
    urg = [c["urgency"] for c in queue]
    assert urg == sorted(urg, reverse=True)
    # the other district's worker cannot open this district's case
    w2 = login(api, "worker2")
    assert api.get(f"/cases/{queue[0]['id']}", headers=w2).status_code == 404
    r = api.post(f"/cases/{queue[0]['id']}/notes", json={"text": "visited"}, headers=w)
    assert r.status_code == 201
    case = api.get(f"/cases/{queue[0]['id']}", headers=w).json()
    assert case["notes"][-1]["text"] == "visited" and case["notes"][-1]["by"] == "worker"
    # the citizen role cannot use worker routes at all
    assert api.get(f"/families/{own}", headers=login(api, "citizen")).status_code == 403


def test_citizen_sees_only_their_family_and_who_looked(api):
    c = login(api, "citizen")
    me = _user(api, "citizen")
    fam = api.get("/me/family", headers=c).json()
    assert fam["family_id"] == me.family_id and "hidden_income_flag" not in fam
    e = api.get("/me/explanation?lang=kk", headers=c).json()
    assert e["level"] == fam["level"] and e["score"] == pytest.approx(fam["score"])
    assert sum(i["points"] for i in e["indicators"]) == pytest.approx(e["score"])
    assert api.get("/stats/levels", headers=c).status_code == 403
    assert api.get("/audit/findings", headers=c).status_code == 403
    # a worker of the family's district reads the card: the citizen sees it in the log
    w = login(api, "worker")
    if _user(api, "worker").district == fam["district"]:
        api.get(f"/families/{me.family_id}", headers=w)
    log = api.get("/me/access-log", headers=c).json()
    assert {"read own family card", "read own level explanation"} <= {x["action"] for x in log}
    assert all(x["actor"] in ("citizen", "worker") for x in log)


def test_analyst_never_gets_a_cell_under_ten(api):
    a = login(api, "analyst")
    for path in (
        "/stats/levels",
        "/stats/levels?by=region",
        "/stats/levels?by=district",
        "/stats/levels?by=urban",
        "/stats/measures",
        "/stats/measures?by_region=true",
    ):
        cells = api.get(path, headers=a).json()["cells"]
        assert cells
        for cell in cells:
            assert cell["suppressed"] or cell["families"] >= MIN_CELL
            if cell["suppressed"]:
                assert cell["families"] is None
    by_district = api.get("/stats/levels?by=district", headers=a).json()["cells"]
    assert any(c["suppressed"] for c in by_district)  # 2,000 families in 226 districts
    assert api.get("/audit/findings", headers=a).status_code == 403
    assert api.get("/stats/levels?by=street", headers=a).status_code == 422


def test_auditor_findings_and_payment_trail(api):
    au = login(api, "auditor")
    r = api.get("/audit/findings?limit=5", headers=au).json()
    assert r["total"] > 0 and len(r["findings"]) == min(5, r["total"])
    amounts = [f["amount_at_risk"] for f in r["findings"]]
    assert amounts == sorted(amounts, reverse=True)
    paid = api.get("/audit/findings?type=amount_mismatch&limit=1", headers=au).json()
    f = paid["findings"][0]
    trail = api.get(f"/audit/payments/{f['family_id']}", headers=au).json()
    assert trail["family_id"] == f["family_id"]
    assert f["measure"] in {p["measure"] for p in trail["payments"]}
    assert all(len(p["person_id"]) == 16 for p in trail["payments"])  # pseudonyms, not IINs
    assert api.get("/audit/payments/nope", headers=au).status_code == 404
    assert api.get("/audit/findings?limit=0", headers=au).status_code == 422


def test_integrator_search_names_the_xroad_client(api):
    i = login(api, "integrator")
    body = {"query": {"level": "E"}, "page_size": 5}
    assert api.post("/registry/search", json=body, headers=i).status_code == 400
    r = api.post("/registry/search", json=body, headers=i | XROAD)
    assert r.status_code == 200
    records = r.json()["message"]["records"]
    assert records and all(x["level"] == "E" for x in records)
    sealed = seal(session_factory(api.store_url))  # what the app's sealer does every 0.5 s
    assert sealed >= len(records)
    with session_factory(api.store_url)() as s:
        clients = s.scalars(
            select(AccessLogEntry.client).where(AccessLogEntry.action == "registry search")
        ).all()
    assert clients and all(c.startswith("KZ/GOV/MTSZN/ASP ->") for c in clients)
    sub = {"event": "level_changed", "callback": "https://asp.example.kz/hook"}
    assert api.post("/registry/subscribe", json=sub, headers=i | XROAD).status_code == 201
    assert api.post("/registry/subscribe", json=sub, headers=i | XROAD).status_code == 409
    bad = api.post("/registry/search", json={"query": {"level": "Z"}}, headers=i | XROAD)
    assert bad.status_code == 422 and "detail" in bad.json()


def test_appeal_through_the_api_changes_the_level_at_once(api):
    c, w = login(api, "citizen"), login(api, "worker")
    fam = api.get("/me/family", headers=c).json()
    r = api.post(
        "/me/appeals",
        json={
            "item": "disabled_group1",
            "claimed_value": "1",
            "reason": "group I decision of 2025-09",
        },
        headers=c,
    )
    assert r.status_code == 201
    bad = api.post(
        "/me/appeals", json={"item": "region", "claimed_value": "x", "reason": "y"}, headers=c
    )
    assert bad.status_code == 422
    if _user(api, "worker").district != fam["district"]:
        pytest.fail("the demo citizen lives in the demo worker's district")
    d = api.post(
        f"/appeals/{r.json()['id']}/decision",
        json={"accept": True, "decision": "MSEC decision seen"},
        headers=w,
    ).json()
    assert d["status"] == "accepted" and d["level_before"] == fam["level"]
    after = api.get("/me/family", headers=c).json()
    assert after["indicators"]["disabled_group1"] == 1
    assert (after["level"], after["score"]) == (d["level_after"], d["score_after"])


def test_access_log_verify_command_detects_tampering(api, monkeypatch):
    w = login(api, "worker")
    api.get("/worker/queue", headers=w)
    api.get("/worker/children", headers=w)
    monkeypatch.setenv(ENV, api.store_url)
    ok = CliRunner().invoke(cli, ["access-log", "verify", "unused"])
    assert ok.exit_code == 0, ok.output
    with session_factory(api.store_url).begin() as s:
        s.execute(text("UPDATE access_log SET purpose = 'curiosity' WHERE id = 1"))
    bad = CliRunner().invoke(cli, ["access-log", "verify", "unused"])
    assert bad.exit_code == 1 and "entry 1" in bad.output


def test_a_deleted_user_is_refused_once_the_user_cache_expires(api):
    """Tokens are checked once and users cached briefly (security.USER_CACHE_SECONDS); a user
    deleted meanwhile is refused (401) as soon as the cache entry expires."""
    h = login(api, "auditor")
    family_id = api.get("/audit/findings?limit=1", headers=h).json()["findings"][0]["family_id"]
    assert api.get(f"/families/{family_id}", headers=h).status_code == 200
    with session_factory(api.store_url).begin() as s:
        s.delete(s.get(User, "auditor"))
    assert api.get(f"/families/{family_id}", headers=h).status_code == 200  # still cached
    expiry, user = api.app.state.users["auditor"]
    api.app.state.users["auditor"] = (expiry - 3600, user)  # as if the seconds had passed
    r = api.get(f"/families/{family_id}", headers=h)
    assert r.status_code == 401 and "no longer exists" in r.json()["detail"]
