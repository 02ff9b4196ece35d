"""Exclusive file locks: one writer at a time for an output folder or a stage of the experiments' cache.

The lock is the operating system's (`fcntl.flock`), so it dies with the process that held it:
a killed run never leaves a stale lock behind. The lock file itself stays, and records who
holds it (process id and command line), so that a run that is refused can say which run has
the folder. Locks need a filesystem whose `flock` is shared between the machines that use it
(local disks; NFS v4 and Lustre mounted with flock support).
"""

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


class LockedError(ValueError):
    """Another run holds the lock; the message names it."""


@contextmanager
def exclusive(path: Path, on_wait: Callable[[str], None] | None = None):
    """Hold an exclusive lock on `path` for the body. Busy: wait if `on_wait` is given (called once
    with the holder's description), else raise LockedError naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:  # "a+": the holder's record stays readable until the lock is ours
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said who it is"
            if on_wait is None:
                raise LockedError(f"{path.parent} is in use by another run ({holder})") from None
            on_wait(holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
