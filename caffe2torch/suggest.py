"""The one "did you mean" rule: close names for a misspelled one, and their wording.

Every message that names an unknown layer type, blob, field, enum value, solver type or
plug-in option offers its suggestions through these two functions, so that the matching
(difflib's ratio, at most three names, first seen first) and the sentence are the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable


def close_names(word: str, candidates: Iterable[str], *, n: int = 3,
                cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``candidates`` that look like ``word``, closest first."""
    import difflib  # a misspelling is rare: a clean file never loads it

    return difflib.get_close_matches(word, list(dict.fromkeys(candidates)), n=n, cutoff=cutoff)


def did_you_mean(names: Iterable[str], quote: str = '"') -> str | None:
    """``did you mean "a", "b"?`` over the first three distinct ``names`` (None when none).

    ``quote`` wraps each name (``'"'``, ``"'"`` or ``""`` for none)."""
    picked = list(dict.fromkeys(names))[:3]
    if not picked:
        return None
    return "did you mean " + ", ".join(f"{quote}{n}{quote}" for n in picked) + "?"
