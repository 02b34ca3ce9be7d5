"""IDX reading and writing, clear errors on bad files, sha256-checked download path."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from sublab.errors import DataError, SublabError
from sublab.mnist.data import (
    IDX_FILES,
    check_sha256,
    download_mnist,
    load_digits_set,
    load_idx_set,
    read_idx,
    write_idx,
)
from sublab.store import file_sha256


def _write_set(folder, n_train=12, n_test=5, gz=True):
    rng = np.random.default_rng(0)
    sets = {
        "train_images": rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 4, 3), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, arr in sets.items():
        write_idx(folder / (IDX_FILES[key] + (".gz" if gz else "")), arr)
    return sets


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    arr = (np.arange(60).reshape(3, 4, 5) - 7).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)


def test_header_matches_the_mnist_layout(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])  # 0x00000803, the MNIST images magic number
    assert struct.unpack(">3I", raw[4:16]) == (2, 28, 28)


def test_bad_magic_names_file_and_expectation(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: bad magic number 0x504b0304"):
        read_idx(bad)


def test_truncated_file_says_how_many_bytes(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.zeros((10, 4, 4), dtype=np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-7]))
    with pytest.raises(DataError, match=r"t\.gz: truncated: header says 10×4×4 values \(160 bytes"):
        read_idx(path)


def test_truncated_gzip_stream_is_a_clear_error(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.zeros((100, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"t\.gz: cannot read"):
        read_idx(path)


def test_wrong_ndim_is_reported(tmp_path):
    path = tmp_path / "labels"
    write_idx(path, np.zeros((4, 2), dtype=np.uint8))
    with pytest.raises(DataError, match="has 2 dims, expected 1"):
        read_idx(path, expect_ndim=1)


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_set_scales_to_minus_one_one(tmp_path, gz):
    sets = _write_set(tmp_path, gz=gz)
    ds = load_idx_set(tmp_path, "mnist")
    assert ds.x_train.shape == (12, 12) and ds.x_test.shape == (5, 12)
    assert ds.x_train.min() >= -1.0 and ds.x_train.max() <= 1.0
    np.testing.assert_allclose(
        ds.x_train[0], sets["train_images"][0].ravel() / 127.5 - 1, atol=1e-6
    )
    np.testing.assert_array_equal(ds.y_test, sets["test_labels"])
    assert load_idx_set(tmp_path, "mnist", limit_train=4).x_train.shape == (4, 12)


def test_missing_dir_and_missing_file_are_clear(tmp_path):
    with pytest.raises(SublabError, match=r"data folder not found; set data\.dir"):
        load_idx_set(tmp_path / "nope", "mnist")
    with pytest.raises(SublabError, match="dataset-fashion-mnist"):
        load_idx_set(tmp_path / "nope", "fashion-mnist")
    _write_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SublabError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        load_idx_set(tmp_path, "mnist")


def test_label_count_mismatch_names_both_files(tmp_path):
    _write_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(DataError, match=r"has 11 labels but train-images-idx3-ubyte\.gz has 12"):
        load_idx_set(tmp_path, "mnist")


def test_digits_set_is_split_and_scaled():
    ds = load_digits_set(test_fraction=0.25, seed=3)
    assert ds.input_dim == 64 and ds.classes == 10
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert abs(len(ds.x_test) - 0.25 * 1797) < 1
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0


def test_sha256_check(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    check_sha256(f, file_sha256(f))
    with pytest.raises(DataError, match=r"sha256 is .*, expected 00; delete the file"):
        check_sha256(f, "00")


def test_download_verifies_hashes_and_leaves_nothing_half_written(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _write_set(mirror)
    names = [IDX_FILES[k] + ".gz" for k in IDX_FILES]
    good = {n: file_sha256(mirror / n) for n in names}
    dest = tmp_path / "dest"
    got = download_mnist(dest, mirror=mirror.as_uri(), hashes=good)
    assert sorted(p.name for p in got) == sorted(names)
    assert load_idx_set(dest, "mnist").x_train.shape == (12, 12)

    bad = {**good, names[0]: "0" * 64}
    dest2 = tmp_path / "dest2"
    with pytest.raises(DataError, match=r"sha256 is .* expected 0000"):
        download_mnist(dest2, mirror=mirror.as_uri(), hashes=bad)
    assert not (dest2 / names[0]).exists()
    assert [p.name for p in dest2.iterdir()] == []


def test_download_without_network_says_what_to_do(tmp_path):
    missing = (tmp_path / "no-mirror").as_uri()
    with pytest.raises(SublabError, match=r"cannot download .* copy the four MNIST files"):
        download_mnist(tmp_path / "d", mirror=missing)
    assert list((tmp_path / "d").iterdir()) == []


def test_existing_file_with_wrong_hash_is_rejected(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    shutil.copy(__file__, dest / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: sha256 is"):
        download_mnist(dest, mirror=(tmp_path / "x").as_uri())
