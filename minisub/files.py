"""Files that are written whole or not at all, and read back only when intact: JSON, safetensors, folders.

The project's one layer of file I/O, under checkpoints (minisub/checkpoint.py), training states
(minisub/training.py), adapters (minisub/lora.py), the experiments' stage cache and every results
file. No pickle anywhere.
- Every file is written to a temporary name (`.NAME.XXXX.tmp`) and renamed into place, so a
  crash mid-write never leaves a half-written file under the real name; `clean_temporaries`
  removes what a killed writer left.
- No tensor that is not finite is written or read: a diverged model is refused by name, never
  saved or loaded as if it were a result.
- Output folders are checked before any work (`check_output_folder`), and kept apart from the
  inputs (`check_apart`).
- `digest` is the one fingerprint of configs the project uses (experiment cache keys), and
  `tensors_digest` the one of weights (the base an adapter was trained on, a training state's
  own bytes); `file_digests` / `check_digests` record and verify the SHA-256 of every file a
  checkpoint or adapter folder holds, so a flipped byte is found, not computed with.
A bad file is a `FileError` with a one-line message that names it.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

TEMPORARY = ".tmp"  # the suffix of atomic_write's temporary files


class FileError(Exception):
    """A missing, unreadable, truncated, damaged or mismatched file, with a one-line message for the user."""


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename tmp_path to path (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; checkpoints are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def clean_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files a killed atomic_write left in `folder`; returns their names.
    Call it only while holding the folder (minisub.locks), so that no live writer's file goes."""
    left = sorted(folder.glob(f".*{TEMPORARY}"))
    for path in left:
        path.unlink()
    return [path.name for path in left]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digests(folder: Path, names) -> dict[str, str]:
    """{name: SHA-256} of the named files of `folder`: what a folder records of the files it holds."""
    return {name: file_sha256(Path(folder) / name) for name in names}


def check_digests(folder: Path, digests: dict[str, str]) -> None:
    """Refuse a folder any of whose recorded files ({name: SHA-256}) is missing or has other bytes."""
    for name, expected in digests.items():
        path = Path(folder) / name
        if not path.is_file():
            raise FileError(f"{path} is missing")
        if file_sha256(path) != expected:
            raise FileError(f"{path} is damaged or was changed: its SHA-256 is not the one its folder recorded")


def digest(data, length: int = 16) -> str:
    """A short, stable fingerprint of any JSON-serializable value (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:length]


def tensors_digest(tensors: dict[str, torch.Tensor], length: int = 16) -> str:
    """A fingerprint of named tensors: names, dtypes, shapes and every byte of the values."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding inf or nan, or None if all are finite."""
    return next((name for name, t in tensors.items()
                 if t.is_floating_point() and not torch.isfinite(t).all()), None)


def check_apart(out: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an output that is, or holds, one of the inputs ({flag: path}): writing it could destroy them."""
    out = Path(out).resolve()
    for name, path in inputs.items():
        if path is not None and (Path(path).resolve() == out or out in Path(path).resolve().parents):
            raise FileError(f"the output {out} is, or holds, the input {name} {path}: choose another output")


def check_output_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and make sure files can be written there: called before any work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileError(f"{folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise FileError(f"cannot write to {folder} ({err.strerror or err})") from None
    return folder


def check_not_replacing(folder: Path, force: bool, what: str) -> None:
    """Refuse an output folder that already holds a run's results.json unless `force` says to replace it: a run
    with no stage cache to rebuild it from would be lost."""
    if (folder / "results.json").exists() and not force:
        raise FileError(f"{folder} already holds {what} (results.json); pass --force to replace it")


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """One safetensors file; `metadata` (strings) goes into its header, committed with the tensors."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    bad = non_finite(tensors)
    if bad is not None:
        raise FileError(f"not writing {path}: {bad} holds values that are not finite")
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileError(f"{path} is missing") from None
    except NotADirectoryError:
        raise FileError(f"{Path(path).parent} is not a folder") from None
    except OSError as err:
        raise FileError(f"cannot read {path} ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileError(f"{path} is not valid JSON ({err})") from None


def read_tensor_file(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of one safetensors file, read in one opening."""
    if not Path(path).is_file():
        raise FileError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise FileError(f"{path} is truncated or corrupt ({err})") from None
    bad = non_finite(tensors)
    if bad is not None:
        raise FileError(f"{path} is damaged or from a diverged run: {bad} holds values that are not finite")
    return tensors, metadata


def read_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return read_tensor_file(path, device)[0]
