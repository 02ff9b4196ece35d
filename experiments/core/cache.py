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

What each build costs is metered per stage kind, without the upstream stages it built on the
way: its seconds always, and, where asked, its matmul FLOPs (`counting_flops`), so that a run's
time can be set against the time its arithmetic needs at the machine's matmul rate.
"""

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from torch.utils.flop_counter import FlopCounterMode

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


@contextmanager
def counting_flops() -> Iterator[Callable[[], float]]:
    """Inside: a function that gives the matmul FLOPs computed so far inside (torch's FlopCounterMode: it sees
    every matmul, forward and backward, at the cost of ~25% more time)."""
    with FlopCounterMode(display=False) as counter:
        yield counter.get_total_flops


class StageCache:
    def __init__(self, root: Path, log: Callable[[str], None], clock: Callable[[], float] = time.perf_counter,
                 flops: Callable[[], float] | None = None):
        """clock: what the seconds are read from; flops: a running FLOP count (`counting_flops`), or None."""
        self.root, self.log = root, log
        self.meters = {"seconds": clock} | ({"flops": flops} if flops is not None else {})
        self.checked: set[Path] = set()  # folders verified (or built) by this process
        self.built: list[str] = []  # the stages this process built, in order
        self.spent: dict[str, dict[str, float]] = {meter: {} for meter in self.meters}  # meter -> stage kind -> what
        # building took, not counting its upstream stages
        self.nested = dict.fromkeys(self.meters, 0.0)  # what the stages built inside the build now running took

    def read(self) -> dict[str, float]:
        return {meter: read() for meter, read in self.meters.items()}

    def add(self, spent: dict[str, dict[str, float]], built: list[str] = ()) -> None:
        """Count what another process's cache spent (a worker's `spent`) as spent here, and the stages it `built`."""
        self.built += built
        for meter, kinds in spent.items():
            for kind, amount in kinds.items():
                self.spent[meter][kind] = self.spent[meter].get(kind, 0.0) + amount

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
                started, outer = self.read(), self.nested
                self.nested = dict.fromkeys(self.meters, 0.0)
                info = build(folder)
                files = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}
                record = json.loads(json.dumps({"key": key, "info": info, "files": files}))  # as it reads back
                write_json(folder / DONE, record | {"sha256": content_hash(record)})
                took = {meter: now - started[meter] for meter, now in self.read().items()}
                self.add({meter: {name.split("-")[0]: took[meter] - self.nested[meter]} for meter in self.meters})
                self.nested = {meter: outer[meter] + took[meter] for meter in self.meters}
                self.built.append(folder.name)
                self.log(f"built {folder.name} in {took['seconds']:.1f} s")
        self.checked.add(folder)
        return folder

    def work_record(self, total: float) -> dict:
        """For results.json: seconds per stage kind built and the run's total; where counted, GFLOP per stage kind."""
        seconds = {kind: round(s, 1) for kind, s in self.spent["seconds"].items()}
        record = {"timing": seconds | {"total": round(total, 1)}}
        if "flops" in self.spent:
            record["gflop"] = {kind: round(flops / 1e9, 1) for kind, flops in self.spent["flops"].items()}
        return record | {"built": self.built}

    @staticmethod
    def info(folder: Path) -> dict:
        return read_json(folder / DONE)["info"]
