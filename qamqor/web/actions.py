"""The access log's actions and purposes in the reader's language: the log stores the API's
English action text (e.g. `case 12: note`); known forms are shown translated, others as stored."""

from __future__ import annotations

import re
from collections.abc import Callable

from qamqor.web.i18n import N_

ACTIONS: list[tuple[re.Pattern, str]] = [
    (re.compile(p), text)
    for p, text in (
        (r"^read own family card$", N_("read the family card")),
        (r"^read own level explanation$", N_("read the explanation of the level")),
        (r"^read own entitlements$", N_("read the entitlements")),
        (r"^read family card$", N_("read the family card")),
        (r"^read level explanation$", N_("read the explanation of the level")),
        (r"^read family members$", N_("read the list of members")),
        (r"^read entitlements$", N_("read the entitlements")),
        (r"^read entitlement explanation$", N_("read why each measure is or is not due")),
        (r"^read family card history$", N_("read the history of the card")),
        (r"^read payment trail$", N_("read the payments")),
        (r"^read children's register$", N_("read the children's register")),
        (r"^registry search$", N_("searched the social registry")),
        (r"^read case (?P<id>\d+)$", N_("read case No. %(id)s")),
        (r"^case (?P<id>\d+): note$", N_("added a note to case No. %(id)s")),
        (r"^case (?P<id>\d+): plan action$", N_("added an action to the plan of case No. %(id)s")),
        (r"^case (?P<id>\d+): action \d+ done$", N_("marked an action of case No. %(id)s done")),
        (r"^case (?P<id>\d+): social contract$", N_("signed a social contract in case No. %(id)s")),
        (
            r"^case (?P<id>\d+): contract outcome$",
            N_("recorded a contract outcome in case No. %(id)s"),
        ),
        (r"^case (?P<id>\d+): status \w+$", N_("changed the status of case No. %(id)s")),
        (r"^consent offer (?P<id>\d+)\b.*$", N_("consented to offer No. %(id)s")),
        (r"^decline offer (?P<id>\d+)\b.*$", N_("declined offer No. %(id)s")),
        (r"^appeal (?P<id>\d+) on \w+$", N_("filed appeal No. %(id)s")),
        (r"^decide appeal (?P<id>\d+)$", N_("decided appeal No. %(id)s")),
    )
]
PURPOSES = {
    "own data": N_("own data"),
    "case work": N_("case work"),
    "statistics": N_("statistics"),
    "audit": N_("audit"),
    "registry exchange": N_("registry exchange"),
    "benchmark": N_("performance measurement"),
}


def action_text(action: str, _: Callable[..., str]) -> str:
    for pattern, text in ACTIONS:
        m = pattern.match(action)
        if m:
            return _(text, **m.groupdict())
    return action


def purpose_text(purpose: str, _: Callable[..., str]) -> str:
    return _(PURPOSES[purpose]) if purpose in PURPOSES else purpose
