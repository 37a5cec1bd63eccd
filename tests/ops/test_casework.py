"""Case work, offer delivery, appeals and the access log on SQLite and PostgreSQL (issue 6
items 2, 3 and 5)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from qamqor.ops import access_log, appeals, cases
from qamqor.ops.centres import CENTRES, seed_centres
from qamqor.ops.daily import publish_and_sync
from qamqor.ops.sender import FileChannel, SimulatedCrash, send_pending
from qamqor.ops.users import AuthError, authenticate
from qamqor.store.access import User
from qamqor.store.cardjson import card_doc
from qamqor.store.casework import Case, CaseEvent, CentreDistrict, ChildInCare
from qamqor.store.db import session_factory
from qamqor.store.models import Offer
from qamqor.store.published import FamilyCard
from tests.factories import offer

RUN_DATE = date(2025, 10, 1)


@pytest.fixture
def published(nation, store_url):
    publish_and_sync(nation, RUN_DATE, store_url)
    return session_factory(store_url)


def test_centres_cover_every_district_once(store_url):
    sessions = session_factory(store_url)
    assert seed_centres(sessions) == CENTRES
    assert seed_centres(sessions) == CENTRES  # idempotent
    with sessions() as s:
        n = s.scalar(select(func.count()).select_from(CentreDistrict))
        distinct = s.scalar(select(func.count(func.distinct(CentreDistrict.district))))
    assert n == distinct > CENTRES
    with sessions() as s:
        workers = s.scalar(select(func.count()).select_from(User).where(User.role == "worker"))
    assert workers == n  # one caseworker per district, who cannot sign in yet
    with pytest.raises(AuthError):
        authenticate(sessions, f"worker-{s.scalar(select(CentreDistrict.district))}", "!")


def test_cases_open_for_d_e_and_triggers_and_follow_recovery(published):
    with published() as s:
        need = s.scalar(
            select(func.count()).where(
                FamilyCard.level.in_(("D", "E")) | FamilyCard.emergency_trigger.is_not(None)
            )
        )
        opened = s.scalar(select(func.count()).select_from(Case))
        wrong_centre = s.scalar(
            select(func.count())
            .select_from(Case)
            .join(CentreDistrict, CentreDistrict.district == Case.district)
            .where(CentreDistrict.centre_id != Case.centre_id)
        )
        fid = s.scalar(select(Case.family_id).order_by(Case.id).limit(1))
    assert opened == need > 0 and wrong_centre == 0
    # the same run again opens nothing new
    again = cases.sync_cases(published, RUN_DATE)
    assert (again.opened, again.updated) == (0, 0)
    # the family recovers to C: proposed for closure after 3 runs, never closed by itself
    day = RUN_DATE
    for i in range(3):
        day = day + timedelta(days=1)
        with published.begin() as s:
            s.execute(update(FamilyCard).values(run_date=day))
            s.execute(
                update(FamilyCard)
                .where(FamilyCard.family_id == fid)
                .values(level="C", emergency_trigger=None)
            )
        r = cases.sync_cases(published, day)
        with published() as s:
            c = s.scalar(select(Case).where(Case.family_id == fid))
        assert c.status == ("closure_proposed" if i == 2 else "open")
    assert r.proposed_for_closure >= 1 and c.closed_on is None
    closed = cases.set_status(published, c.id, "closed", "worker1", "family is stable")
    assert closed.status == "closed"
    with published() as s:
        history = s.scalars(select(CaseEvent.status).where(CaseEvent.case_id == c.id)).all()
    assert history == ["open", "closure_proposed", "closed"]
    with pytest.raises(cases.CaseError, match="closed"):
        cases.add_note(published, c.id, "worker1", "too late")


def test_plan_contract_notes_and_overdue(published):
    with published() as s:
        case_id = s.scalar(select(Case.id).order_by(Case.id).limit(1))
    a = cases.add_action(
        published,
        case_id,
        "education",
        "Enrol the child in school",
        "School 12",
        RUN_DATE + timedelta(days=10),
    )
    late = cases.overdue(published, RUN_DATE + timedelta(days=11))
    assert {(x["case_id"], x["action_id"]) for x in late} >= {(case_id, a.id)}
    cases.complete_action(published, case_id, a.id, RUN_DATE + timedelta(days=5))
    late = cases.overdue(published, RUN_DATE + timedelta(days=11))
    assert (case_id, a.id) not in {(x["case_id"], x["action_id"]) for x in late}
    c = cases.add_contract(
        published, case_id, "p1", "Attend job training", "Bastau Business", RUN_DATE
    )
    assert c.ends_on > c.signed_on
    assert cases.record_outcome(published, case_id, c.id, "employed").outcome == "employed"
    with pytest.raises(cases.CaseError, match="service"):
        cases.add_action(published, case_id, "astrology", "x", "y", RUN_DATE)
    with pytest.raises(cases.CaseError, match="empty"):
        cases.add_note(published, case_id, "w", "  ")


def test_children_without_parental_care_are_registered(published):
    with published() as s:
        triggered = s.scalars(
            select(Case.id).where(Case.reason == f"emergency: {cases.CHILD_TRIGGER}")
        ).all()
        registered = s.scalar(select(func.count()).select_from(ChildInCare))
        plans = s.scalars(select(ChildInCare.protection_plan)).all()
    assert (len(triggered) > 0) == (registered > 0)
    assert all("protection plan" in p for p in plans)


def test_offer_sender_crash_duplicates_nothing(nation, store_url, tmp_path):
    sessions = session_factory(store_url)
    # two entitlement runs are needed for offers: make every family's offers by hand instead
    with sessions.begin() as s:
        for i in range(12):
            s.add(offer(f"f{i}", "asp", RUN_DATE, amount=1000.0 + i, message="Вам положена АСП"))
    box = tmp_path / "outbox" / "messages.jsonl"
    with pytest.raises(SimulatedCrash):
        send_pending(sessions, FileChannel(box), RUN_DATE, crash_after=5)
    r = send_pending(sessions, FileChannel(box), RUN_DATE)  # the restarted sender
    keys = [json.loads(line)["key"] for line in box.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 12
    assert r.resent_after_crash == 1 and r.sent == 8
    with sessions() as s:
        assert s.scalar(select(func.count()).where(Offer.status == "sent")) == 12
    assert send_pending(sessions, FileChannel(box), RUN_DATE).sent == 0


def test_appeal_correction_reevaluates_at_once(published):
    with published() as s:
        fam = s.scalars(
            select(FamilyCard).where(FamilyCard.level == "A", FamilyCard.children > 0).limit(1)
        ).first()
    assert fam is not None
    # the family says it has no income at all: with children that is an emergency (level E)
    a = appeals.file_appeal(
        published, fam.family_id, "income_per_capita_3m", "0", "I lost my job in August", "citizen"
    )
    for item in ("wages_3m", "self_employment_3m", "pensions_3m", "benefits_3m"):
        appeals.decide(
            published,
            appeals.file_appeal(published, fam.family_id, item, "0", "no income", "citizen").id,
            True,
            "worker1",
            "employer's letter checked",
        )
    d = appeals.decide(published, a.id, True, "worker1", "confirmed by the employment centre")
    assert (d.level_before, d.level_after) == ("A", "E")
    with published() as s:
        card = s.get(FamilyCard, (fam.run_date, fam.family_id))
    assert card.level == "E" and card.emergency_trigger == "no_income_with_children"
    assert card_doc(card)["income_per_capita_3m"] == 0  # stored sparse: zero is left out
    assert "income_per_capita_3m" not in json.loads(card.card)
    with pytest.raises(appeals.AppealError, match="already accepted"):
        appeals.decide(published, a.id, False, "worker1", "again")
    with pytest.raises(appeals.AppealError, match="not a valid"):
        appeals.file_appeal(published, fam.family_id, "members", "two", "x", "citizen")
    with pytest.raises(appeals.AppealError, match="not an appealable"):
        appeals.file_appeal(published, fam.family_id, "region", "KZ-75", "x", "citizen")


def test_access_log_detects_edits_and_deletions(store_url):
    sessions = session_factory(store_url)
    for i in range(6):
        access_log.append(
            sessions,
            actor=f"w{i}",
            role="worker",
            action="read card",
            purpose="case review",
            family_id="F1",
        )
    assert access_log.verify(sessions).ok
    assert [e["actor"] for e in access_log.who_looked(sessions, "F1")][:2] == ["w5", "w4"]
    with sessions.begin() as s:
        s.execute(text("UPDATE access_log SET actor = 'nobody' WHERE id = 3"))
    v = access_log.verify(sessions)
    assert not v.ok and any("entry 3" in p for p in v.problems)
    with sessions.begin() as s:
        s.execute(text("UPDATE access_log SET actor = 'w2' WHERE id = 3"))
        s.execute(text("DELETE FROM access_log WHERE id = 6"))
    v = access_log.verify(sessions)
    assert not v.ok and any("head" in p for p in v.problems)


def test_access_log_sealer_chains_concurrent_appends(store_url):
    """Appends from many threads at once all land on the chain, in order, exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    from qamqor.store.access import AccessLogEntry, AccessLogInbox

    sessions = session_factory(store_url)
    sealer = access_log.Sealer(sessions, every=0.05)
    sealer.start()

    def one(i: int) -> None:
        access_log.append(
            sessions,
            actor=f"u{i}",
            role="worker",
            action="read card",
            purpose="case review",
            family_id=f"F{i % 7}",
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    sealer.stop()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccessLogInbox)) == 0
        actors = s.scalars(select(AccessLogEntry.actor)).all()
    assert sorted(actors) == sorted(f"u{i}" for i in range(200))
    v = access_log.verify(sessions)
    assert v.ok and v.entries == 200


def test_inbox_writer_group_commits_every_entry_once(store_url):
    """Entries handed to the writer from many threads at once are all durable when their futures
    resolve, in fewer commits than entries, and chain cleanly."""
    from concurrent.futures import ThreadPoolExecutor

    from qamqor.store.access import AccessLogInbox

    sessions = session_factory(store_url)
    writer = access_log.InboxWriter(sessions)
    commits = []

    def count(_conn) -> None:
        commits.append(1)

    event.listen(sessions.kw["bind"], "commit", count)

    def one(i: int) -> None:
        writer.append(actor=f"u{i}", role="auditor", action="read", purpose="audit", family_id="F")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(300)))
    event.remove(sessions.kw["bind"], "commit", count)
    with sessions() as s:
        actors = s.scalars(select(AccessLogInbox.actor)).all()
    assert sorted(actors) == sorted(f"u{i}" for i in range(300))
    assert len(commits) < 300  # concurrent entries shared commits
    assert access_log.verify(sessions).entries == 300


def test_inbox_writer_fails_the_request_when_the_log_cannot_be_written(store_url):
    """No access goes unlogged: if the insert fails, the waiting caller gets the error."""
    sessions = session_factory(store_url)
    writer = access_log.InboxWriter(sessions)
    with pytest.raises(Exception, match=r"(?i)null|constraint"):
        writer.append(actor=None, role="auditor", action="read", purpose="audit")
    writer.append(actor="next", role="auditor", action="read", purpose="audit")  # still works
    assert access_log.verify(sessions).entries == 1
