"""Family Support Centres: seeded from the country pack so that every district is served by
exactly one centre (SPEC §11: 128 centres), each with a mobile group, and one caseworker account
per district (sign-in enabled when an administrator sets its password)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qamqor.countries import Country, load_country
from qamqor.store.access import User
from qamqor.store.casework import Centre, CentreDistrict, MobileGroup

CENTRES = 128
NO_PASSWORD = "!"  # not an argon2 hash: nobody signs in until a password is set (add_user)


def allocate(country: Country, total: int = CENTRES) -> dict[str, list[list[str]]]:
    """Per region, its districts split into contiguous groups, one group per centre: every
    region gets one centre and the rest go by number of districts (largest remainder)."""
    regions = list(country.region_codes)
    sizes = {r: len(country.districts_of(r)) for r in regions}
    if total < len(regions) or total > sum(sizes.values()):
        raise ValueError(f"{total} centres cannot serve {len(regions)} regions")
    spare = total - len(regions)
    quota = {r: spare * sizes[r] / sum(sizes.values()) for r in regions}
    counts = {r: 1 + int(quota[r]) for r in regions}
    for r in sorted(regions, key=lambda r: quota[r] - int(quota[r]), reverse=True):
        if sum(counts.values()) >= total:
            break
        if counts[r] < sizes[r]:
            counts[r] += 1
    out = {}
    for r in regions:
        codes = [d.code for d in country.districts_of(r)]
        k = min(counts[r], len(codes))
        out[r] = [codes[i * len(codes) // k : (i + 1) * len(codes) // k] for i in range(k)]
    return out


def seed_centres(sessions: sessionmaker[Session], country: str = "kz") -> int:
    """Create the centres once (a second call changes nothing); returns how many exist."""
    c = load_country(country)
    names = {d.code: d.name for d in c.districts}
    with sessions.begin() as s:
        existing = s.scalar(select(func.count()).select_from(Centre))
        if existing:
            return existing
        n = 0
        for region, groups in allocate(c).items():
            for group in groups:
                n += 1
                cid = f"FSC-{n:03d}"
                s.add(
                    Centre(
                        id=cid,
                        region=region,
                        name=f"Family Support Centre, {names[group[0]]['en']}",
                    )
                )
                s.flush()
                s.add_all(CentreDistrict(district=d, centre_id=cid) for d in group)
                s.add(MobileGroup(id=f"{cid}-MG1", centre_id=cid, name="Mobile group 1"))
                for d in group:  # one caseworker account per district, sign-in not yet enabled
                    s.add(
                        User(
                            username=f"worker-{d}",
                            role="worker",
                            password_hash=NO_PASSWORD,
                            full_name=f"Caseworker, {names[d]['en']}",
                            district=d,
                            centre_id=cid,
                        )
                    )
        return n
