"""Demo users of a synthetic installation, one per role, chosen from the published run so that
each has something to look at: the worker of the district with the most open cases, a second
worker elsewhere, and a citizen whose family has an open case."""

from __future__ import annotations

import os

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qamqor.ops.users import add_user
from qamqor.store.casework import Case
from qamqor.store.published import FamilyCard, Publication

PASSWORD_ENV = "QAMQOR_DEMO_PASSWORD"
DEFAULT_PASSWORD = "qamqor-demo"


def seed_demo_users(sessions: sessionmaker[Session]) -> list[dict]:
    """Create (or reset) the demo users; returns [{username, role, password, note}]."""
    password = os.environ.get(PASSWORD_ENV, DEFAULT_PASSWORD)
    with sessions() as s:
        run = s.scalar(select(Publication.run_date))
        if run is None:
            raise LookupError("publish a run first (`qamqor publish DIR`)")
        busiest = s.execute(
            select(Case.district, Case.centre_id, func.count().label("n"))
            .where(Case.status != "closed")
            .group_by(Case.district, Case.centre_id)
            .order_by(func.count().desc(), Case.district)
            .limit(2)
        ).all()
        if not busiest:
            raise LookupError("no open case in the published run: nothing for a worker to do")
        district, centre = busiest[0].district, busiest[0].centre_id
        fam = s.scalar(
            select(Case.family_id)
            .join(
                FamilyCard, (FamilyCard.family_id == Case.family_id) & (FamilyCard.run_date == run)
            )
            .where(Case.district == district, Case.status != "closed", FamilyCard.children > 0)
            .order_by(Case.urgency.desc(), Case.family_id)
            .limit(1)
        ) or s.scalar(select(Case.family_id).where(Case.district == district).limit(1))
        other = busiest[1] if len(busiest) > 1 else busiest[0]
    users = [
        ("analyst", "analyst", "Aigerim Analyst", {}, "national statistics"),
        ("auditor", "auditor", "Arman Auditor", {}, "findings and payment trails"),
        ("integrator", "integrator", "ASP information system", {}, "registry search/subscribe"),
        (
            "worker",
            "worker",
            "Dana Worker",
            {"district": district, "centre_id": centre},
            f"district {district}",
        ),
        (
            "worker2",
            "worker",
            "Erlan Worker",
            {"district": other.district, "centre_id": other.centre_id},
            f"district {other.district}",
        ),
        ("citizen", "citizen", "Citizen of family " + fam, {"family_id": fam}, f"family {fam}"),
    ]
    out = []
    for username, role, name, extra, note in users:
        add_user(sessions, username, role, password, name, **extra)
        out.append({"username": username, "role": role, "password": password, "note": note})
    return out
