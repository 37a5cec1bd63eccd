"""Kazakh and Russian names (Cyrillic) for the synthetic population, with Latin transliteration."""

from __future__ import annotations

MALE_FIRST = (
    "Нурлан Ерлан Асхат Серик Бауыржан Даурен Ержан Талгат Марат Арман Айдос Алихан Нуржан "
    "Ерболат Бекзат Жандос Руслан Санжар Тимур Алмас Ахмет Дамир Ильяс Олжас Мирас Айбек Азамат "
    "Кайрат Мухтар Берик Рустем Габит Жасулан Куаныш Ернар Арсен Амир Нурсултан Әли Ислам "
    "Александр Сергей Андрей Дмитрий Владимир Николай Иван Виктор Евгений Алексей"
).split()

FEMALE_FIRST = (
    "Айгерим Айжан Гульнара Динара Жанар Салтанат Алия Асель Мадина Камила Аружан Айнур Назира "
    "Гульмира Сауле Жанна Меруерт Дана Томирис Аяулым Жансая Ботагоз Нургуль Самал Айдана "
    "Акмарал Балжан Карлыгаш Райхан Зарина Фатима Айша Амина Малика Жибек Индира Куралай "
    "Лаура Анель Әсел Елена Ольга Наталья Татьяна Ирина Светлана Анна Мария Екатерина Юлия"
).split()

# Surnames in the masculine form; the feminine adds "а" (-ов/-ев/-ин) as in official records.
SURNAMES = (
    "Ахметов Сейткалиев Нурланов Жумабаев Абдрахманов Касымов Токаев Омаров Султанов Бекмуханов "
    "Садыков Искаков Ермеков Мусин Кенжебаев Жаксылыков Утепов Беков Ибраев Сарсенбаев "
    "Турсунов Есенов Алиев Муканов Кудайбергенов Иманбаев Байжанов Тлеубаев Шарипов Жакупов "
    "Сагинтаев Айтжанов Оспанов Рахимов Даулетов Калиев Амиров Бейсенов Нургалиев Серикбаев "
    "Иванов Петров Смирнов Кузнецов Попов Васильев Соколов Михайлов Новиков Фёдоров"
).split()

_LATIN = {
    "а": "a", "ә": "a", "б": "b", "в": "v", "г": "g", "ғ": "g", "д": "d", "е": "e", "ё": "yo",
    "ж": "zh", "з": "z", "и": "i", "й": "y", "к": "k", "қ": "k", "л": "l", "м": "m", "н": "n",
    "ң": "n", "о": "o", "ө": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ұ": "u",
    "ү": "u", "ф": "f", "х": "kh", "һ": "h", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch",
    "ъ": "", "ы": "y", "і": "i", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip


def feminine(surname: str) -> str:
    """The feminine form of a masculine surname (Ахметов → Ахметова, Мусин → Мусина)."""
    return surname + "а" if surname.endswith(("ов", "ев", "ёв", "ин")) else surname


def patronymic(father_first: str, female: bool) -> str:
    """Russian-style patronymic from the father's first name."""
    stem = father_first
    if stem.endswith("й"):
        return stem[:-1] + ("евна" if female else "евич")
    if stem.endswith(("а", "я")):
        return stem[:-1] + ("ична" if female else "ич")
    return stem + ("овна" if female else "ович")


def to_latin(text: str) -> str:
    """A simple passport-style Cyrillic → Latin transliteration."""
    out = []
    for ch in text:
        lat = _LATIN.get(ch.lower())
        if lat is None:
            out.append(ch)
        else:
            out.append(lat.capitalize() if ch.isupper() else lat)
    return "".join(out)
