"""Name, date and sex normalisation before linkage.

Registries write the same person in Kazakh or Russian Cyrillic, in the official Latin alphabet of
2021 (``Janna``, ``Qairat``) or in a passport transliteration (``Zhanna``, ``Kairat``). Both sides
of a comparison go through the same two steps so that these spellings meet:

1. ``CYRILLIC``: one Latin spelling for every Kazakh and Russian Cyrillic letter
   (the passport scheme: ж→zh, х→kh, ц→ts, ш→sh, щ→shch, ю→yu, я→ya; the Kazakh letters
   ә ғ қ ң ө ұ ү һ і drop to their nearest plain Latin letter).
2. ``LATIN_FOLDS``: after diacritics are stripped, spelling variants that the schemes disagree on
   are folded together (yo/io after a consonant→e, kh→h, j→zh, q→k, w→u, y→i, ...), and
   everything except letters goes.

The result is not meant to be read, only compared: 'Нурлан', 'Nurlan' and 'NURLAN ' all become
'nurlan'; 'Жанна', 'Zhanna' and 'Janna' become 'zhanna'. Remaining differences (a typo, 'Aigul'
against 'Aygul') are left to the Jaro-Winkler levels of the model.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

CYRILLIC: dict[str, str] = {
    "а": "a", "ә": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "д": "d", "е": "e", "ё": "e",
    "ж": "zh", "з": "z", "и": "i", "й": "i", "к": "k", "қ": "k", "л": "l", "м": "m", "н": "n",
    "ң": "n", "о": "o", "ө": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ұ": "u",
    "ү": "u", "ф": "f", "х": "kh", "һ": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch",
    "ъ": "", "ы": "y", "і": "i", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip

# Applied in order, to Latin text with diacritics already removed.
LATIN_FOLDS: list[tuple[str, str]] = [
    ("shch", "sh"), ("dzh", "zh"), ("kh", "h"), ("ts", "c"), ("j", "zh"), ("zhzh", "zh"),
    ("q", "k"), ("w", "u"), ("x", "ks"), ("y", "i"), ("ii", "i"),
]  # fmt: skip

# ё after a consonant: 'e' in the passport scheme, 'yo' or 'io' in others (Fyodorov, Fiodorov,
# Fedorov; Semyon, Semen); applied before the folds, to both sides.
_YO = re.compile(r"(?<=[bcdfghjklmnpqrstvwxz])[yi]o")
_NOT_LETTER = re.compile(r"[^a-z]")


def normalise_name(value: object) -> str | None:
    """The comparable form of a name, or None if there is no name."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    text = "".join(CYRILLIC.get(ch, ch) for ch in str(value).strip().lower())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("ı", "i")  # dotless i of the 2021 Kazakh Latin alphabet
    text = _YO.sub("e", text)
    for old, new in LATIN_FOLDS:
        text = text.replace(old, new)
    text = _NOT_LETTER.sub("", text)
    return text or None


_SEX = {"m": "M", "м": "M", "male": "M", "ер": "M", "1": "M",
        "f": "F", "ж": "F", "female": "F", "әйел": "F", "2": "F"}  # fmt: skip


def normalise_sex(value: object) -> str | None:
    """'M', 'F' or None; accepts M/F, Cyrillic М/Ж, male/female."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    return _SEX.get(str(value).strip().lower())


def normalise_iin(value: object) -> str | None:
    """The 12 digits of an IIN, or None if missing or not 12 digits."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    digits = re.sub(r"\D", "", str(value))
    return digits if len(digits) == 12 else None
