"""The months of age the rules read are computed from the stored birth date on the run date."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from qamqor.measures.persons import age_months_sql


def whole_months(born: date, on: date) -> int:
    """Calendar months from `born` to `on`, less one while the day of the month is not
    reached (someone born on the 31st gains a month only in months that have a 31st)."""
    return (on.year - born.year) * 12 + on.month - born.month - (born.day > on.day)


def test_months_of_age_on_every_day_of_a_year() -> None:
    births = [date(2024, 2, 29), date(2023, 1, 31), date(2025, 3, 1), date(1960, 12, 15)]
    days = [date(2025, 1, 1) + timedelta(days=i) for i in range(0, 365)]
    con = duckdb.connect()
    con.execute("CREATE TABLE b (born DATE)")
    con.executemany("INSERT INTO b VALUES (?)", [(x,) for x in births])
    for on in days:
        got = dict(con.execute(f"SELECT born, {age_months_sql('born', on)} FROM b").fetchall())
        assert got == {x: whole_months(x, on) for x in births}, on
    # spot checks by hand: a month is gained on the day of the month of birth
    assert whole_months(date(2025, 3, 1), date(2025, 3, 31)) == 0
    assert whole_months(date(2025, 3, 1), date(2025, 4, 1)) == 1
    assert whole_months(date(2023, 1, 31), date(2025, 2, 28)) == 24
    assert whole_months(date(2023, 1, 31), date(2025, 3, 31)) == 26
