"""Display names of uploaded files. The name a browser sends is untrusted text: it is never part of a path."""

import unicodedata
from pathlib import PurePath

MAX_NAME_LENGTH = 120
FALLBACK_NAME = "attachment"
# Control characters, format characters (bidi overrides such as U+202E, zero-width marks), surrogates,
# private-use and unassigned code points: none belongs in a name a person reads.
UNPRINTABLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


def display_name(raw: str) -> str:
    """The last path component of `raw`, printable, on one line, at most MAX_NAME_LENGTH characters.

    Markup is kept as text: every place that shows the name escapes it.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if unicodedata.category(char) not in UNPRINTABLE_CATEGORIES)
    name = " ".join(name.split()).strip(". ")
    if len(name) > MAX_NAME_LENGTH:
        suffix = PurePath(name).suffix[:12]
        name = name[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
    return name or FALLBACK_NAME
