"""Where a relative path in a Caffe file would have worked: Caffe opens the net named by
a solver (and every data source) relative to the working directory, not to the file that
names it, so a path that fails from here often works from the file's folder or one above
it (a solver in ``models/x/`` that names ``x/train_test.prototxt`` runs from ``models/``).
"""

from __future__ import annotations

import os

_MAX_LEVELS = 8  # folders above the naming file that are searched


def folder_where_found(name: str, naming_file: str | os.PathLike[str]) -> str | None:
    """The nearest of ``naming_file``'s folder and its parents (up to a few levels) from
    which the relative path ``name`` names an existing file; None when there is none (or
    ``name`` is absolute)."""
    if os.path.isabs(name):
        return None
    folder = os.path.dirname(os.path.abspath(os.fspath(naming_file)))
    for _ in range(_MAX_LEVELS):
        if os.path.isfile(os.path.join(folder, name)):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None


def shown(folder: str) -> str:
    """``folder`` as the user would type it: relative to the working directory when it is
    below it."""
    rel = os.path.relpath(folder)
    return folder if rel.startswith("..") else rel


def where_text(folder: str, naming_file: str | os.PathLike[str], what: str) -> str:
    """"beside the solver, in models/x" or "relative to models" for messages."""
    own = os.path.dirname(os.path.abspath(os.fspath(naming_file)))
    return f"beside the {what}, in {shown(folder)}" if folder == own else (
        f"relative to {shown(folder)}")
