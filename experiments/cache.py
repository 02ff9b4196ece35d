"""The experiments' stage cache: each stage's result in a folder named by a digest of its key.

`StageCache.stage(name, key, build)` returns `<root>/<name>-<digest of key>`, calling
`build(folder) -> info` only when that folder holds no finished, intact result. A finished
folder has a done.json with the key, the info and a SHA-256 of every file the build wrote;
on first use in a process the files are checked against it, and a damaged or half-built
folder is rebuilt from scratch, with one line saying so. A lock file per stage makes a second
run that needs the same stage wait for the first instead of building it again; an
interrupted build leaves no done.json and is simply redone.
"""

import fcntl
import hashlib
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from minisub.checkpoint import CheckpointError, digest, read_json, write_json

DONE = "done.json"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def damage(folder: Path) -> str | None:
    """None if `folder` holds a finished, intact stage; else what is wrong with it."""
    if not (folder / DONE).exists():
        return "is not built" if not folder.exists() else "was left half-built"
    try:
        files = read_json(folder / DONE)["files"]
    except (CheckpointError, KeyError, TypeError):
        return f"has an unreadable {DONE}"
    for name, expected in files.items():
        if not (folder / name).is_file():
            return f"lost {name}"
        if file_hash(folder / name) != expected:
            return f"has a damaged {name}"
    return None


class StageCache:
    def __init__(self, root: Path, log: Callable[[str], None]):
        self.root, self.log = root, log
        self.checked: set[Path] = set()  # folders verified (or built) by this process
        self.built: list[str] = []  # the stages this process built, in order
        self.timing: dict[str, float] = {}  # seconds spent building, per stage kind (not its upstream stages)
        self.nested = 0.0  # seconds of the stages built inside the build now running

    @contextmanager
    def lock(self, folder: Path):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(folder.with_name(folder.name + ".lock"), "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log(f"cache: waiting for another run that is building {folder.name}")
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def stage(self, name: str, key: dict, build: Callable[[Path], dict]) -> Path:
        """The folder of a stage's result, building it (build(folder) -> info) when absent or damaged."""
        folder = self.root / f"{name}-{digest(key, 12)}"
        if folder in self.checked:
            return folder
        with self.lock(folder):
            problem = damage(folder)
            if problem is not None:
                if folder.exists():
                    self.log(f"cache: {folder.name} {problem}; rebuilding it")
                    shutil.rmtree(folder)
                folder.mkdir(parents=True)
                started, outer = time.perf_counter(), self.nested
                self.nested = 0.0
                info = build(folder)
                files = {p.name: file_hash(p) for p in sorted(folder.iterdir()) if p.is_file()}
                write_json(folder / DONE, {"key": key, "info": info, "files": files})
                kind, elapsed = name.split("-")[0], time.perf_counter() - started
                self.timing[kind] = self.timing.get(kind, 0.0) + elapsed - self.nested
                self.nested = outer + elapsed
                self.built.append(folder.name)
        self.checked.add(folder)
        return folder

    def timing_record(self, total: float) -> dict:
        """Seconds per stage kind built by this process, and the run's total, for results.json."""
        return {kind: round(seconds, 1) for kind, seconds in self.timing.items()} | {"total": round(total, 1)}

    @staticmethod
    def info(folder: Path) -> dict:
        return read_json(folder / DONE)["info"]
