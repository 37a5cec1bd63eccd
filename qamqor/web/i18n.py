"""Languages of the web pages: gettext catalogues (kk, ru, en) read from the .po files at start.

Strings in Python are marked with `N_` (extracted, translated where shown); templates call
`_("text", name=value)`. The .po files under `locales/LANG/LC_MESSAGES/` are the source: they are
parsed once with Babel (no compile step; see docs/web.md for extract/update commands)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LANGS = ("kk", "ru", "en")
DEFAULT_LANG = "ru"
COOKIE = "lang"
LOCALES = Path(__file__).parent / "locales"


def N_(text: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return text


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / "messages.po"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> msgstr of one language (empty or missing translations fall back to the msgid)."""
    path = po_path(lang)
    if not path.exists():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str) and m.string}


def translator(lang: str) -> Callable[..., str]:
    """`_(text, **values)`: the translation of `text`, %-formatted with `values` if any."""
    table = catalogue(lang if lang in LANGS else DEFAULT_LANG)

    def _(text: str, **values) -> str:
        out = table.get(text) or text
        return out % values if values else out

    return _


def pick_lang(cookie: str | None, user_lang: str | None = None) -> str:
    for lang in (cookie, user_lang):
        if lang in LANGS:
            return lang
    return DEFAULT_LANG


def number(lang: str) -> Callable[..., str]:
    """A number formatter for the language (digits grouped; None as a dash)."""

    def fmt(x, digits: int = 0) -> str:
        if x is None or isinstance(x, bool):
            return "—" if x is None else str(x)
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(x, format=pattern, locale=lang)

    return fmt


def percent(lang: str) -> Callable[..., str]:
    def fmt(x) -> str:
        return "—" if x is None else format_percent(x, format="#,##0.0%", locale=lang)

    return fmt
