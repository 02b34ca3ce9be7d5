"""Image sets for the MNIST experiment: IDX files (MNIST, Fashion-MNIST) and sklearn's digits.

Every set comes back as float32 images flattened and scaled to [-1, 1] plus int64 labels.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sublab.errors import DataError, SublabError
from sublab.store import atomic_output, file_sha256

# The four standard files of an IDX image set (MNIST and Fashion-MNIST share the names).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# sha256 of the canonical gzipped MNIST files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}
# IDX type byte -> numpy big-endian dtype.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_BYTE = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}


@dataclass(frozen=True)
class ImageSet:
    """Train and test splits, images as [N, D] float32 in [-1, 1], labels as [N] int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)


# ---------------------------------------------------------------- IDX format


def _open_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(path, None, f"cannot read ({err}); re-fetch the file") from None


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped if its name ends in .gz) into a numpy array.

    Raises DataError naming the file and what was expected: magic number, dims, byte count.
    """
    p = Path(path)
    data = _open_bytes(p)
    if len(data) < 4:
        raise DataError(p, None, f"truncated: {len(data)} bytes, expected a 4-byte IDX header")
    zero, type_byte, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_byte not in _IDX_TYPES or ndim == 0:
        raise DataError(
            p,
            None,
            f"bad magic number 0x{data[:4].hex()}: an IDX file starts with 00 00, a type byte "
            f"(08 for unsigned bytes) and the number of dims (e.g. 0x00000803 for images, "
            f"0x00000801 for labels); is this the right file?",
        )
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataError(p, None, f"has {ndim} dims, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(p, None, f"truncated header: {len(data)} bytes, expected {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_TYPES[type_byte]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(data) - header
    if have != need:
        shape = "×".join(str(d) for d in dims)
        raise DataError(
            p,
            None,
            f"{'truncated' if have < need else 'too long'}: header says {shape} values "
            f"({need} bytes of data) but the file has {have}; re-fetch the file",
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(dims)
        .astype(dtype.newbyteorder("="))
    )


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzipped if the name ends in .gz), atomically."""
    arr = np.asarray(array)
    type_byte = _TYPE_BYTE.get(arr.dtype.newbyteorder("="))
    if type_byte is None:
        raise SublabError(f"write_idx: unsupported dtype {arr.dtype}")
    body = struct.pack(">HBB", 0, type_byte, arr.ndim)
    body += struct.pack(f">{arr.ndim}I", *arr.shape)
    body += arr.astype(_IDX_TYPES[type_byte]).tobytes()
    p = Path(path)
    with atomic_output(p) as tmp:
        if p.suffix == ".gz":
            with gzip.open(tmp, "wb") as f:
                f.write(body)
        else:
            tmp.write_bytes(body)


def find_idx_file(folder: Path, stem: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz`` (also the ``stem.idx3-ubyte`` dot spelling)."""
    candidates = [
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise SublabError(
        f"{folder}: missing {stem}[.gz]; put the four IDX files "
        f"({', '.join(IDX_FILES.values())}, gzipped or not) in this folder"
        + " (or, for MNIST with internet, set data.download = true)"
    )


def _scale(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(images.shape[0], -1).astype(np.float32)
    return flat / np.float32(127.5) - np.float32(1.0)


def load_idx_set(folder: str | Path, name: str, limit_train: int | None = None) -> ImageSet:
    """Load an MNIST-format image set from ``folder`` (checks dims and counts)."""
    root = Path(folder)
    if not root.is_dir():
        raise SublabError(
            f"{root}: data folder not found; set data.dir to the folder holding the IDX files"
            + (
                " (Fashion-MNIST on Debian: apt-get install dataset-fashion-mnist, then "
                "`dpkg -L dataset-fashion-mnist` shows the folder)"
                if name == "fashion-mnist"
                else ""
            )
        )
    arrays = {}
    for key, stem in IDX_FILES.items():
        f = find_idx_file(root, stem)
        arrays[key] = (f, read_idx(f, expect_ndim=3 if key.endswith("images") else 1))
    for split in ("train", "test"):
        (fi, xi), (fl, yl) = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if xi.shape[0] != yl.shape[0]:
            raise DataError(
                fl, None, f"has {yl.shape[0]} labels but {fi.name} has {xi.shape[0]} images"
            )
        if xi.dtype != np.uint8:
            raise DataError(fi, None, f"pixels are {xi.dtype}, expected unsigned bytes (type 08)")
    x_train = arrays["train_images"][1]
    y_train = arrays["train_labels"][1]
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    return ImageSet(
        name,
        _scale(x_train),
        y_train.astype(np.int64),
        _scale(arrays["test_images"][1]),
        arrays["test_labels"][1].astype(np.int64),
    )


def load_digits_set(test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """scikit-learn's 8×8 digits (1797 images, 64 pixels 0..16), scaled to [-1, 1], split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data.astype(np.float32) / np.float32(8.0)) - np.float32(1.0)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return ImageSet("digits", x_tr, y_tr, x_te, y_te)


# ---------------------------------------------------------------- download


def check_sha256(path: str | Path, expected: str) -> None:
    """Raise DataError if ``path``'s sha256 is not ``expected``."""
    got = file_sha256(path)
    if got != expected:
        raise DataError(
            path, None, f"sha256 is {got}, expected {expected}; delete the file and fetch it again"
        )


def download_mnist(
    folder: str | Path,
    mirror: str = MNIST_MIRROR,
    timeout: float = 60.0,
    hashes: dict[str, str] | None = None,
) -> list[Path]:
    """Fetch the four gzipped MNIST files into ``folder`` (skipping good ones), sha256-checked.

    A file is downloaded to a temp name and renamed into place only after its hash matches.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    hashes = MNIST_SHA256 if hashes is None else hashes
    for name, sha in hashes.items():
        dest = root / name
        if dest.exists():
            check_sha256(dest, sha)
            out.append(dest)
            continue
        url = mirror.rstrip("/") + "/" + name
        with atomic_output(dest) as tmp:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as f:
                    shutil.copyfileobj(resp, f)
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                raise SublabError(
                    f"cannot download {url} ({err}). Without internet, copy the four MNIST files "
                    f"({', '.join(hashes)}) into {root} by hand and set data.download = false"
                ) from None
            check_sha256(tmp, sha)
        out.append(dest)
    return out


def load_image_set(
    name: str,
    folder: Path | None = None,
    *,
    download: bool = False,
    test_fraction: float = 0.2,
    limit_train: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Load the set a config names (digits / mnist / fashion-mnist)."""
    if name == "digits":
        ds = load_digits_set(test_fraction, seed)
        if limit_train is not None:
            ds = ImageSet(
                ds.name, ds.x_train[:limit_train], ds.y_train[:limit_train], ds.x_test, ds.y_test
            )
        return ds
    if folder is None:
        raise SublabError(f"data.dir is required for data.name = {name!r}")
    if download:
        if name != "mnist":
            raise SublabError(
                f"data.download supports 'mnist' only; install {name} files into {folder} yourself"
            )
        download_mnist(folder)
    return load_idx_set(folder, name, limit_train)
