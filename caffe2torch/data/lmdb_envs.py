"""One read-only LMDB environment per database per process, shared by every reader.

Caffe opens an LMDB once per Data layer (db_lmdb.cpp: mdb_env_open with MDB_RDONLY), so
a train net and a test net on one source, or a second solver built while the first is
still alive (BVLC's 01-learning-lenet notebook builds one solver after another on the
same LMDBs), all read it. py-lmdb refuses to open the same files twice in one process;
sharing one counted Environment per database gives Caffe's behaviour. Each reader still
takes its own read transaction.
"""

from __future__ import annotations

import os
from typing import Any

# (pid, device, inode of data.mdb) -> [environment, number of readers]
_OPEN: dict[tuple[int, int, int], list[Any]] = {}


def _forget_after_fork() -> None:
    # a forked DataLoader worker opens its own environments: py-lmdb refuses an open
    # while the parent's Environment object is alive in the child, so close those copies
    # (the parent's stay open) and let the readers, which see the new pid, open again
    for env, _ in _OPEN.values():
        env.close()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _identity(path: str) -> tuple[int, int, int]:
    # the files, not the path: a database deleted and written again at the same path
    # while the old one is open is another database (py-lmdb keys its guard the same way)
    st = os.stat(os.path.join(path, "data.mdb"))
    return os.getpid(), st.st_dev, st.st_ino


def acquire(path: str) -> Any:
    """The shared read-only Environment of the LMDB folder ``path``; raises lmdb.Error
    (or OSError when data.mdb is missing) as lmdb.open does."""
    import lmdb

    key = _identity(path)
    entry = _OPEN.get(key)
    if entry is None:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, max_readers=512,
                        subdir=True)
        entry = _OPEN[key] = [env, 0]
    entry[1] += 1
    return entry[0]


def release(env: Any) -> None:
    """One reader is done with ``env``; the last one closes it."""
    for key, entry in list(_OPEN.items()):
        if entry[0] is env:
            entry[1] -= 1
            if entry[1] <= 0:
                del _OPEN[key]
                env.close()
            return
    env.close()  # not one of ours
