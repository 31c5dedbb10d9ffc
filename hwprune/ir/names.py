"""Names that become C identifiers: model names (symbol prefixes) and layer names."""

from __future__ import annotations

import re

from hwprune.errors import OptionError

_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_c_identifier(name: str) -> bool:
    return bool(_C_IDENTIFIER.fullmatch(name))


# C99's keywords; a model name becomes the prefix of C symbols, so none of these can be one.
C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary""".split())


def check_c_name(name: str, what: str = "--name") -> str:
    """``name`` when it can prefix every C symbol and macro of an export, else OptionError."""
    if not isinstance(name, str) or not is_c_identifier(name):
        raise OptionError(f"{what} {name!r} is not a C identifier: use letters, digits and _, not starting with a digit")
    if name in C_KEYWORDS:
        raise OptionError(f"{what} {name!r} is a C keyword; choose another name")
    if name.startswith("_"):
        raise OptionError(f"{what} {name!r}: names starting with _ are reserved for the C implementation")
    return name
