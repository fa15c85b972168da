"""Name normalisation shared by the blind indexes and the fuzzy matcher.

One normalisation for both, so a name that a blind index puts in a bucket is compared in the same
form it was bucketed in. Folding: apostrophes dropped (O'Brien -> obrien), Unicode NFKD with
combining marks stripped (Zoë -> zoe, Ó -> o), case-folded (ß -> ss), the Latin letters NFKD does
not decompose mapped by hand (ø, ł, đ, æ, œ, þ ...). Anything that is not a letter separates tokens
(spaces, hyphens, full stops, digits); the *skeleton* is the tokens run together, so "Zoë-Mae",
"zoe mae" and "ZOEMAE" share one.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fold", "name_skeleton", "name_tokens", "phonetic_key"]

_APOSTROPHES = frozenset("'\u2018\u2019\u02bc\u02bb`\u00b4\u2032")
_UNDECOMPOSED = str.maketrans(
    {
        "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe",
        "ı": "i", "ħ": "h", "ŧ": "t", "ŋ": "n", "ĸ": "k", "ſ": "s",
    }
)  # fmt: skip


def _strip_marks(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Case-folded, diacritic-free, apostrophe-free form of a name (separators kept)."""
    text = "".join(c for c in text if c not in _APOSTROPHES)
    # Twice: case folding can produce new decomposable characters (e.g. capital I with dot above).
    return _strip_marks(_strip_marks(text).casefold()).translate(_UNDECOMPOSED)


def name_tokens(text: str) -> tuple[str, ...]:
    """The folded name split on every non-letter: "Zoë-Mae" -> ("zoe", "mae")."""
    tokens: list[str] = []
    current: list[str] = []
    for char in fold(text):
        if char.isalpha():
            current.append(char)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tuple(tokens)


def name_skeleton(text: str) -> str:
    """Letters only, folded, run together: the form blind indexes and family-name scores use."""
    return "".join(name_tokens(text))


# American Soundex classes (US National Archives rules): vowels separate, h and w do not.
_SOUNDEX = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}
_VOWELS = frozenset("aeiouy")


def _initial(skeleton: str) -> str:
    """The first letter, folded into a class where spellings commonly disagree on it.

    Osman/Usman, Ibrahim/Ebrahim and Ó Briain/O'Brien differ in (or by) a leading vowel; Cohen/Kohen
    in c/k; Phillips/Fillips in ph/f. Plain Soundex keeps the first letter verbatim and would split
    each pair into two buckets.
    """
    first = skeleton[0]
    if first in _VOWELS - {"y"}:
        return "a"
    if skeleton.startswith("ph"):
        return "f"
    if first in "ckq":
        return "k"
    return first


def phonetic_key(text: str) -> str:
    """A coarse phonetic bucket for a family name: folded initial class + three Soundex digits.

    "Ó Briain", "O'Brien" and "OBrian" all give "a165". Names with no Latin letters after folding
    (another script) fall back to their first two letters: a narrower bucket, still not the name.
    Empty for a name with no letters at all.
    """
    skeleton = name_skeleton(text)
    latin = "".join(c for c in skeleton if "a" <= c <= "z")
    if not latin:
        return skeleton[:2]
    digits: list[str] = []
    previous = _SOUNDEX.get(latin[0], "")
    for char in latin[1:]:
        code = _SOUNDEX.get(char)
        if code is None:
            if char in _VOWELS:
                previous = ""  # a vowel separates two letters of the same class
            continue  # h and w are transparent
        if code != previous:
            digits.append(code)
        previous = code
    return (_initial(latin) + "".join(digits) + "000")[:4]
