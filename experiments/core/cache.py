"""The experiments' stage cache: each stage's result in a folder named by a digest of its key.

`StageCache.stage(name, key, build)` returns `<root>/<name>-<digest of key>`, calling
`build(folder) -> info` only when that folder holds no finished, intact result. A finished
folder has a done.json with the key, the info, a SHA-256 of every file the build wrote, and a
SHA-256 of its own content (for students and scores the info *is* the result, so done.json
is checked like every other file); on first use in a process the files are checked against
it, and a damaged, half-built or misplaced folder is rebuilt from scratch, with one line
saying so. A lock file per stage makes a second
run that needs the same stage wait for the first instead of building it again; an
interrupted build leaves no done.json and is simply redone.
"""

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from minisub.files import FileError, digest, file_sha256, read_json, write_json
from minisub.locks import exclusive

DONE = "done.json"


def content_hash(record: dict) -> str:
    """The SHA-256 of a done record's content (everything but the hash itself), keys sorted."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def damage(folder: Path, key: dict) -> str | None:
    """None if `folder` holds the finished, intact stage of `key`; else what is wrong with it."""
    if not (folder / DONE).exists():
        return "is not built" if not folder.exists() else "was left half-built"
    try:
        record = read_json(folder / DONE)
        saved_hash, files = record.pop("sha256"), record["files"]
    except (FileError, KeyError, TypeError, AttributeError):
        return f"has an unreadable {DONE}"
    if content_hash(record) != saved_hash:
        return f"has a damaged {DONE}"
    if record["key"] != json.loads(json.dumps(key)):  # compared as JSON reads it back (tuples are lists)
        return f"holds another stage ({DONE} names another key)"
    for name, expected in files.items():
        if not (folder / name).is_file():
            return f"lost {name}"
        if file_sha256(folder / name) != expected:
            return f"has a damaged {name}"
    return None


class StageCache:
    def __init__(self, root: Path, log: Callable[[str], None], clock: Callable[[], float] = time.perf_counter):
        self.root, self.log, self.clock = root, log, clock  # clock: what the timing record reads
        self.checked: set[Path] = set()  # folders verified (or built) by this process
        self.built: list[str] = []  # the stages this process built, in order
        self.timing: dict[str, float] = {}  # seconds spent building, per stage kind (not its upstream stages)
        self.nested = 0.0  # seconds of the stages built inside the build now running

    def stage(self, name: str, key: dict, build: Callable[[Path], dict]) -> Path:
        """The folder of a stage's result, building it (build(folder) -> info) when absent or damaged."""
        folder = self.root / f"{name}-{digest(key, 12)}"
        if folder in self.checked:
            return folder

        def waiting(holder: str) -> None:
            self.log(f"cache: waiting for another run ({holder}) to build {folder.name}")
        with exclusive(folder.with_name(folder.name + ".lock"), on_wait=waiting):
            problem = damage(folder, key)
            if problem is not None:
                if folder.exists():
                    self.log(f"cache: {folder.name} {problem}; rebuilding it")
                    shutil.rmtree(folder)
                folder.mkdir(parents=True)
                self.log(f"build {folder.name}")
                started, outer = self.clock(), self.nested
                self.nested = 0.0
                info = build(folder)
                files = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
                record = json.loads(json.dumps({"key": key, "info": info, "files": files}))  # as it reads back
                write_json(folder / DONE, record | {"sha256": content_hash(record)})
                kind, elapsed = name.split("-")[0], self.clock() - started
                self.timing[kind] = self.timing.get(kind, 0.0) + elapsed - self.nested
                self.nested = outer + elapsed
                self.built.append(folder.name)
                self.log(f"built {folder.name} in {elapsed:.1f} s")
        self.checked.add(folder)
        return folder

    def timing_record(self, total: float) -> dict:
        """Seconds per stage kind built by this process, and the run's total, for results.json."""
        return {kind: round(seconds, 1) for kind, seconds in self.timing.items()} | {"total": round(total, 1)}

    @staticmethod
    def info(folder: Path) -> dict:
        return read_json(folder / DONE)["info"]
