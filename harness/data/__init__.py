"""Dataset loading: UCI Adult, UCI Forest Cover (Covertype) and CIFAR-10.

Where the data comes from
-------------------------
Each loader looks for its files in this order and uses the first place that has them:

1. the directory given explicitly (``--data-dir`` on the pytest command line, ``data_dir=`` here),
2. the directory in the ``IMBALANCE_DATA_DIR`` environment variable,
3. ``../shared/data`` next to the repository checkout,
4. a download, verified by checksum, into the cache directory (needs internet).

A dataset that is found nowhere and cannot be downloaded raises :class:`DataError` naming all
three ways to supply it. A file that is present but whose checksum does not match the published
one raises :class:`DataError` too: a silently truncated file would otherwise produce results.

Label convention
----------------
Binary tasks put the majority class at label 0 and the minority class at label 1, so that the
imbalance builders of :mod:`harness.data.imbalance` (head class first, tail class last) make label 1
the rare class. Multi-class CIFAR-10 keeps its own label order; the long-tail profile makes
class 0 the head and class 9 the tail, as LDAM-DRW does.

Encodings
---------
Adult: the six numeric columns are kept as they are (XGBoost is scale free; the linear SVM
standardizes). The eight categorical columns are one-hot encoded with the levels seen in
``adult.data``; a level seen only in ``adult.test`` encodes as all zeros. ``?`` (missing) is kept
as a level of its own, i.e. an explicit "missing" indicator, because missingness in Adult is
informative (it concentrates in people out of work). ``>50K`` is the minority class.

Forest Cover: the binary task Spruce/Fir (cover type 1) versus Lodgepole Pine (cover type 2).
Spruce/Fir is the rarer of the two in both the full data and the shared sample, so it is the
minority (label 1). The UCI data has no held-out split we can use for the shared sample, so a
fixed, stratified 20% of the rows (split seed 0, independent of the run seed) is the test split.
The full data from scikit-learn is min-max scaled on its 10 quantitative columns, to match the
shared sample.

Toy 2D (Figure 9): generated, not downloaded. Majority (label 0) a standard Gaussian blob;
minority (label 1) a tight cluster at (1.5, 1.5) with standard deviation 0.35, inside the
majority's tail. Fixed data seeds (1234 train, 5678 test): one problem; run seeds vary the model.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import math
import numbers
import os
import struct
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..caching import ObjectCache
from .images import at_image_size

REPO_ROOT = Path(__file__).resolve().parents[2]  # harness/data/__init__.py -> the checkout
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache"
DATA_DIR_ENV = "IMBALANCE_DATA_DIR"
CACHE_DIR_ENV = "IMBALANCE_CACHE_DIR"

# Published checksums (sha256) of the files the loaders read, by path relative to a data
# directory: each dataset declares its own when it is registered (register_dataset).
SHA256: dict[str, str] = {}
# The Adult files equal the UCI originals.
ADULT_SHA256 = {
    "adult/adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult/adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}
COVTYPE_SHA256 = {
    "covtype/covtype-sample.csv.gz": "d1683af154f7279cfb7221e813d44d904346d4965779c56bfbe7c5c74cebf8fd",
}
CIFAR10_SHA256 = {
    "cifar10/cifar10-jpeg.zip": "ead45e06542622104d3e17a0e554f18656c4cf310408a9ee502d835a28cf897d",
}
ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"

ADULT_NUMERIC = (0, 2, 4, 10, 11, 12)  # age, fnlwgt, education-num, capital-gain/-loss, hours
ADULT_CATEGORICAL = (1, 3, 5, 6, 7, 8, 9, 13)
COVTYPE_TEST_FRACTION = 0.2
COVTYPE_SPLIT_SEED = 0
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_BINARY_CLASSES = ("airplane", "automobile")  # the pair the authors' code uses


class DataError(RuntimeError):
    """A dataset is missing, corrupt or unknown; the message says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """A labelled train split and a held-out test split, as numpy arrays.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"adult"``.
    x_train, y_train, x_test, y_test : np.ndarray
        Features (float32 for tabular data, uint8 NHWC for images) and int64 labels.
    class_names : tuple of str
        Name of each label, in label order.
    source : dict
        Where the data came from: ``kind`` (data-dir, env, shared, download), ``variant``,
        ``path`` and ``sha256`` where known. Every run record carries it.
    categorical : tuple of tuple of int
        The one-hot blocks of a tabular dataset's categorical columns, each the column indices
        of one categorical variable (exactly one of them is 1 on a training row). Resamplers
        that make synthetic rows treat each block as one categorical value (SMOTENC); empty for
        data with no categorical columns.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: dict = field(default_factory=dict)
    categorical: tuple[tuple[int, ...], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV, DEFAULT_CACHE_DIR))


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The local directories searched for data, in priority order, with the name of each."""
    found = []
    if data_dir:
        found.append(("data-dir", Path(data_dir)))
    if os.environ.get(DATA_DIR_ENV):
        found.append(("env", Path(os.environ[DATA_DIR_ENV])))
    found.append(("shared", SHARED_DATA_DIR))
    return found


def missing_data_error(dataset: str, wanted: str, searched, reason: str) -> DataError:
    places = "\n".join(f"  - {p / wanted}" for _, p in searched)
    return DataError(
        f"dataset {dataset!r}: {wanted} was not found and could not be downloaded ({reason}).\n"
        f"Looked in:\n{places}\n"
        "Fix it in one of three ways: pass --data-dir DIR (pytest) / data_dir=DIR (Python); "
        f"set {DATA_DIR_ENV}=DIR; or put the files under {SHARED_DATA_DIR}. DIR must hold "
        f"{wanted}. With internet access the file is downloaded and checksummed automatically."
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def verified_sha256(path: Path, relative: str) -> str:
    """Hash ``path`` and compare with the published checksum of ``relative``; cached per process."""
    actual = sha256_of(path)
    expected = SHA256.get(relative)
    if expected is not None and actual != expected:
        raise DataError(
            f"{path} is corrupt or not the expected file: sha256 {actual[:16]}... does not match "
            f"the published {expected[:16]}.... Replace it with a fresh copy (see "
            f"{SHARED_DATA_DIR / 'README.md'}) or delete it so that it is downloaded again."
        )
    return actual


def locate(relative: str, data_dir=None) -> tuple[str, Path] | None:
    """First local copy of ``relative`` (e.g. ``adult/adult.data``) in the search order."""
    for kind, directory in candidate_dirs(data_dir):
        if (directory / relative).is_file():
            return kind, directory / relative
    return None


def download(url: str, dest: Path, expected_sha256: str) -> None:
    """Download ``url`` to ``dest`` atomically, keeping it only if its checksum matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            out.write(response.read())
        if sha256_of(tmp) != expected_sha256:
            raise DataError(f"download of {url} did not match its published checksum")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_file(dataset: str, relative: str, url: str | None, data_dir=None) -> tuple[Path, dict]:
    """Path to a verified copy of ``relative``: local if any, else downloaded into the cache."""
    hit = locate(relative, data_dir)
    if hit is None:
        cached = cache_dir() / "downloads" / relative
        if not cached.is_file():
            if url is None:
                raise missing_data_error(dataset, relative, candidate_dirs(data_dir), "no download")
            try:
                download(url, cached, SHA256[relative])
            except (OSError, DataError) as err:
                raise missing_data_error(dataset, relative, candidate_dirs(data_dir), str(err)) from err
        hit = ("download", cached)
    kind, path = hit
    return path, {"kind": kind, "path": str(path), "sha256": verified_sha256(path, relative)}


# ------------------------------------------------------------------------------ parsed arrays

def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays ``build`` makes, kept in the ``.npz`` at ``path``: the first load of a data
    file parses it, every later one (each session, each worker) reads the arrays back. Written
    atomically; a cache that cannot be read is rebuilt and one that cannot be written is only
    slower. ``path`` must name what the arrays are a function of (the data's checksum and,
    where the parsing may change, :func:`parser_digest`)."""
    if path.is_file():
        try:
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # truncated or foreign: parse again
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".part{os.getpid()}.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays


def parser_digest(*functions: Callable) -> str:
    """A short digest of the parsing code's source, so that a changed parser never reads the
    arrays an older one cached."""
    import inspect

    return hashlib.sha256("".join(inspect.getsource(f) for f in functions).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- Adult

def read_adult_rows(path: Path) -> list[list[str]]:
    rows = []
    with open(path, newline="") as handle:
        for row in csv.reader(handle, skipinitialspace=True):
            if len(row) != 15:  # the test file's "|1x3 Cross validator" line and blank lines
                continue
            rows.append([cell.strip() for cell in row])
    if not rows:
        raise DataError(f"{path} holds no Adult records (15 comma-separated fields per line)")
    return rows


def encode_adult(rows, levels) -> tuple[np.ndarray, np.ndarray]:
    numeric = np.array([[float(r[c]) for c in ADULT_NUMERIC] for r in rows], dtype=np.float32)
    blocks = [numeric]
    for col, col_levels in zip(ADULT_CATEGORICAL, levels):
        index = {level: i for i, level in enumerate(col_levels)}
        onehot = np.zeros((len(rows), len(col_levels)), dtype=np.float32)
        for i, r in enumerate(rows):
            j = index.get(r[col])
            if j is not None:
                onehot[i, j] = 1.0
        blocks.append(onehot)
    # ">50K" in adult.data, ">50K." in adult.test
    labels = np.array([1 if r[14].rstrip(".") == ">50K" else 0 for r in rows], dtype=np.int64)
    return np.concatenate(blocks, axis=1), labels


@lru_cache(maxsize=4)
def load_adult(data_dir=None) -> Dataset:
    train_path, train_src = fetch_file("adult", "adult/adult.data", ADULT_URL + "adult.data", data_dir)
    test_path, test_src = fetch_file("adult", "adult/adult.test", ADULT_URL + "adult.test", data_dir)

    def parse() -> dict[str, np.ndarray]:
        train_rows, test_rows = read_adult_rows(train_path), read_adult_rows(test_path)
        levels = [sorted({r[c] for r in train_rows}) for c in ADULT_CATEGORICAL]
        x_train, y_train = encode_adult(train_rows, levels)
        x_test, y_test = encode_adult(test_rows, levels)
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
                "levels": np.array([len(col) for col in levels])}

    # the key: both files' checksums, the parsers' source and the column lists they read
    columns = hashlib.sha256(repr((ADULT_NUMERIC, ADULT_CATEGORICAL)).encode()).hexdigest()[:8]
    key = (f"{train_src['sha256'][:12]}-{test_src['sha256'][:12]}-"
           f"{parser_digest(read_adult_rows, encode_adult, load_adult)}-{columns}")
    arrays = cached_arrays(cache_dir() / "adult" / f"adult-{key}.npz", parse)
    source = {"variant": "uci-original", "kind": train_src["kind"],
              "path": str(train_path.parent), "sha256": {"adult.data": train_src["sha256"],
                                                         "adult.test": test_src["sha256"]}}
    return Dataset("adult", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   ("<=50K", ">50K"), source, one_hot_blocks(len(ADULT_NUMERIC), arrays["levels"]))


def one_hot_blocks(first: int, sizes) -> tuple[tuple[int, ...], ...]:
    """Column indices of consecutive one-hot blocks of ``sizes`` columns, from column ``first``."""
    starts = first + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    return tuple(tuple(range(int(s), int(s) + int(n))) for s, n in zip(starts, sizes))


# -------------------------------------------------------------------------------- Forest Cover

def covtype_binary(features: np.ndarray, cover: np.ndarray, source: dict) -> Dataset:
    """Spruce/Fir (1) vs Lodgepole Pine (2), the rarer of the two as label 1, fixed 80/20 split."""
    keep = (cover == 1) | (cover == 2)
    features, cover = features[keep].astype(np.float32), cover[keep]
    minority_cover = 1 if (cover == 1).sum() <= (cover == 2).sum() else 2
    labels = (cover == minority_cover).astype(np.int64)
    rng = np.random.default_rng(COVTYPE_SPLIT_SEED)
    test_mask = np.zeros(len(labels), dtype=bool)
    for c in (0, 1):  # stratified: the same test fraction of each class
        members = np.flatnonzero(labels == c)
        test_mask[rng.choice(members, int(round(COVTYPE_TEST_FRACTION * len(members))), replace=False)] = True
    names = {1: "Spruce/Fir", 2: "Lodgepole Pine"}
    class_names = (names[3 - minority_cover], names[minority_cover])
    # 10 quantitative columns, then one-hot wilderness area (4) and soil type (40).
    return Dataset("covtype", features[~test_mask], labels[~test_mask], features[test_mask],
                   labels[test_mask], class_names, source, one_hot_blocks(10, (4, 40)))


def read_covtype_sample(path: Path) -> np.ndarray:
    """The shared sample's table: 54 feature columns, then Cover_Type."""
    with gzip.open(path, "rt") as handle:
        header = handle.readline().strip().split(",")
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    if header[-1] != "Cover_Type" or table.shape[1] != 55:
        raise DataError(f"{path}: expected 55 columns ending in Cover_Type, got {len(header)}")
    return table


@lru_cache(maxsize=4)
def load_covtype(data_dir=None) -> Dataset:
    relative = "covtype/covtype-sample.csv.gz"
    hit = locate(relative, data_dir)
    if hit is not None:
        kind, path = hit
        digest = verified_sha256(path, relative)
        table = cached_arrays(cache_dir() / "covtype" / f"covtype-sample-{digest[:12]}-"
                              f"{parser_digest(read_covtype_sample)}.npz",
                              lambda: {"table": read_covtype_sample(path)})["table"]
        source = {"variant": "ramp-sample", "kind": kind, "path": str(path), "sha256": digest}
        return covtype_binary(table[:, :-1], table[:, -1].astype(np.int64), source)
    try:  # the full data for users with internet; scikit-learn verifies its checksum
        from sklearn.datasets import fetch_covtype

        bunch = fetch_covtype(data_home=str(cache_dir() / "sklearn"), download_if_missing=True)
    except Exception as err:  # noqa: BLE001 - any failure here means "no data", reported below
        raise missing_data_error("covtype", relative, candidate_dirs(data_dir), str(err)) from err
    features = bunch.data.astype(np.float64)
    quantitative = features[:, :10]
    span = quantitative.max(0) - quantitative.min(0)
    features[:, :10] = (quantitative - quantitative.min(0)) / np.where(span > 0, span, 1)
    source = {"variant": "sklearn-full", "kind": "download", "path": str(cache_dir() / "sklearn")}
    return covtype_binary(features, bunch.target.astype(np.int64), source)


# ------------------------------------------------------------------------------------ CIFAR-10

# Per-channel statistics of the CIFAR-10 training images (0..1 scale), declared when cifar10 and
# cifar10-binary are registered: the networks standardize their inputs with them
# (harness.nn.batches.normalize).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

def read_torchvision_cifar(folder: Path) -> tuple[np.ndarray, ...]:
    """Read torchvision's ``cifar-10-batches-py`` folder (the dataset's own pickle format)."""
    import pickle  # the dataset's distribution format; the result store never uses pickle

    def batch(name):
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, np.asarray(entry["labels"], dtype=np.int64)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = batch("test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test)


def zip_members(path: Path):
    """``(name, bytes)`` of a zip's files in name order. Stored (uncompressed) members are sliced
    out of one read of the archive, without ``zipfile``'s per-member open (a third of the time
    of 60,000 tiny JPEGs); the archive's checksum is verified by the caller."""
    with zipfile.ZipFile(path) as archive:
        infos = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
        raw = memoryview(path.read_bytes())
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                yield info.filename, archive.read(info)
                continue
            # A local file header is 30 bytes, then the name and an extra field (their lengths
            # are the header's last two little-endian uint16s), then the data.
            name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            yield info.filename, raw[start:start + info.file_size]


def decode_cifar_zip(path: Path) -> tuple[np.ndarray, ...]:
    """Decode ``train/<class>/<n>.jpg`` and ``test/<class>/<n>.jpg`` into uint8 NHWC arrays."""
    from PIL import Image

    splits = {"train": ([], []), "test": ([], [])}
    for name, blob in zip_members(path):
        parts = name.split("/")
        if len(parts) != 3 or not parts[2].endswith(".jpg"):
            continue
        split, label_name, _ = parts
        if split not in splits or label_name not in CIFAR10_CLASSES:
            raise DataError(f"{path}: unexpected entry {name!r}")
        image = Image.open(io.BytesIO(blob))
        if image.mode != "RGB":  # converting an RGB image would only copy it
            image = image.convert("RGB")
        splits[split][0].append(np.asarray(image, dtype=np.uint8))
        splits[split][1].append(CIFAR10_CLASSES.index(label_name))
    arrays = []
    for split in ("train", "test"):
        images, labels = splits[split]
        if not images:
            raise DataError(f"{path}: no {split}/ images in the archive")
        arrays += [np.stack(images), np.asarray(labels, dtype=np.int64)]
    return tuple(arrays)


def cached_cifar_zip(path: Path, digest: str) -> tuple[np.ndarray, ...]:
    """Decode the JPEG pack once; later loads read a ``.npz`` keyed by the pack's checksum."""
    names = ("x_train", "y_train", "x_test", "y_test")
    arrays = cached_arrays(cache_dir() / "cifar10" / f"cifar10-jpeg-{digest[:16]}.npz",
                           lambda: dict(zip(names, decode_cifar_zip(path))))
    return tuple(arrays[k] for k in names)


@lru_cache(maxsize=2)
def load_cifar10(data_dir=None) -> Dataset:
    for kind, directory in candidate_dirs(data_dir):
        for folder in (directory / "cifar10" / "cifar-10-batches-py", directory / "cifar-10-batches-py"):
            if (folder / "test_batch").is_file():
                source = {"variant": "torchvision", "kind": kind, "path": str(folder)}
                return Dataset("cifar10", *read_torchvision_cifar(folder), CIFAR10_CLASSES, source)
    hit = locate("cifar10/cifar10-jpeg.zip", data_dir)
    if hit is not None:
        kind, path = hit
        digest = verified_sha256(path, "cifar10/cifar10-jpeg.zip")
        source = {"variant": "jpeg-zip", "kind": kind, "path": str(path), "sha256": digest}
        return Dataset("cifar10", *cached_cifar_zip(path, digest), CIFAR10_CLASSES, source)
    root = cache_dir() / "torchvision"
    try:  # torchvision verifies the archive's MD5 itself
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
    except Exception as err:  # noqa: BLE001 - any failure here means "no data", reported below
        raise missing_data_error("cifar10", "cifar10/cifar10-jpeg.zip or cifar10/cifar-10-batches-py/",
                                 candidate_dirs(data_dir), str(err)) from err
    folder = root / "cifar-10-batches-py"
    source = {"variant": "torchvision", "kind": "download", "path": str(folder)}
    return Dataset("cifar10", *read_torchvision_cifar(folder), CIFAR10_CLASSES, source)


@lru_cache(maxsize=2)
def load_cifar10_binary(data_dir=None) -> Dataset:
    """Airplane (label 0, majority) versus automobile (label 1, minority)."""
    full = load_cifar10(data_dir)
    keep_train = np.isin(full.y_train, (0, 1))
    keep_test = np.isin(full.y_test, (0, 1))
    return Dataset("cifar10-binary", full.x_train[keep_train], full.y_train[keep_train],
                   full.x_test[keep_test], full.y_test[keep_test], CIFAR10_BINARY_CLASSES, full.source)


# ------------------------------------------------------------------------------- toy 2D (Fig. 9)

TOY_MAJORITY_MEAN, TOY_MINORITY_MEAN, TOY_MINORITY_STD = (0.0, 0.0), (1.5, 1.5), 0.35


def sample_toy(n_major: int, n_minor: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    major = rng.normal(TOY_MAJORITY_MEAN, 1.0, size=(n_major, 2))
    minor = rng.normal(TOY_MINORITY_MEAN, TOY_MINORITY_STD, size=(n_minor, 2))
    x = np.concatenate([major, minor]).astype(np.float32)
    y = np.concatenate([np.zeros(n_major), np.ones(n_minor)]).astype(np.int64)
    return x, y


def load_toy2d(data_dir=None) -> Dataset:
    x_train, y_train = sample_toy(1000, 1000, seed=1234)
    x_test, y_test = sample_toy(2000, 2000, seed=5678)
    return Dataset("toy2d", x_train, y_train, x_test, y_test, ("majority", "minority"),
                   {"variant": "generated", "kind": "synthetic", "sha256": "seed1234-seed5678"})


# -------------------------------------------------------------------------------- the registry

Loader = Callable[[str | None], Dataset]  # loader(data_dir) -> Dataset
ImageStatistics = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std), one value a channel

DATASETS: dict[str, Loader] = {}  # name -> loader; register_dataset adds to it
_IMAGE_STATISTICS: dict[str, ImageStatistics] = {}  # name -> (mean, std), image datasets only
_CHECKSUMS_OF: dict[str, dict[str, str]] = {}  # name -> the checksums it declared


def checked_image_statistics(mean, std) -> ImageStatistics:
    """``(mean, std)`` as tuples of floats, one value per channel, or a ValueError saying the fix.

    Parameters
    ----------
    mean, std : float or sequence of float
        Per-channel mean and standard deviation of the training images on the 0..1 scale (pixel
        values divided by 255). A scalar stands for every channel; with a sequence on the other
        side it is repeated to that length.

    Returns
    -------
    tuple of (tuple of float, tuple of float)
        ``mean`` and ``std``, of one length.

    Raises
    ------
    ValueError
        Not numbers, different lengths, a mean outside 0..1 or a std that is not finite and > 0.
    """
    def channels(values, which: str) -> tuple[float, ...]:
        if isinstance(values, np.ndarray):
            values = values.ravel().tolist()
        values = (values,) if isinstance(values, numbers.Real) else values
        try:
            values = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"image statistics: {which} must be a number or one number per channel "
                             f"(0..1 scale); got {values!r}") from None
        if not values:
            raise ValueError(f"image statistics: {which} is empty; give one number per channel, "
                             "or one number for all channels")
        return values

    mean, std = channels(mean, "mean"), channels(std, "std")
    if len(mean) != len(std):
        if 1 not in (len(mean), len(std)):
            raise ValueError(f"image statistics: mean has {len(mean)} channels and std {len(std)}; "
                             "give one value per channel for both (or one value for all channels)")
        n = max(len(mean), len(std))
        mean, std = mean * (n // len(mean)), std * (n // len(std))
    if not all(math.isfinite(s) and s > 0 for s in std):
        raise ValueError(f"image statistics: std must be finite and greater than 0 for every channel; "
                         f"got {std}. Pass each channel's standard deviation of the training "
                         "pixels on the 0..1 scale (a constant channel cannot be standardized: "
                         "give it std 1)")
    if not all(math.isfinite(m) and 0 <= m <= 1 for m in mean):
        raise ValueError(f"image statistics: mean must lie in 0..1 for every channel; got {mean}. "
                         "The statistics are on the 0..1 scale: divide 0..255 pixel statistics "
                         "by 255")
    return mean, std


def register_dataset(name: str, loader: Loader, checksums: dict[str, str] | None = None,
                     image_statistics: tuple | None = None, *, replace: bool = False) -> None:
    """Make a dataset loadable by name: :func:`load`, run specs, the claim tests.

    Parameters
    ----------
    name : str
        The name runs ask for (``make_spec(name, ...)``); not one registered already.
    loader : callable
        ``loader(data_dir) -> Dataset``, ``data_dir`` a str or None (see :func:`candidate_dirs`
        for the search order a loader is expected to follow). Cache what it loads
        (``functools.lru_cache``): every run asks for it again.
    checksums : dict of str to str, optional
        Published sha256 of the files the loader reads, by path relative to a data directory
        (``"mydata/train.csv"``). They join :data:`SHA256`, which :func:`fetch_file` and
        :func:`verified_sha256` check files against.
    image_statistics : (mean, std), optional
        For an image dataset: the per-channel mean and standard deviation of its training
        images on the 0..1 scale (tuples of floats, or a scalar each for every channel); the
        networks standardize their inputs with them (:func:`harness.nn.batches.standardized_by`).
        None for tabular data; an image dataset without them is standardized with a generic
        mean 0.5, std 0.25.
    replace : bool
        Replace a dataset registered under ``name`` (its loader, checksums and statistics).
        For a test that swaps a dataset for the whole process; one that swaps it for a while
        uses :func:`registered_dataset`, which puts the old one back.

    Raises
    ------
    ValueError
        ``name`` is taken (without ``replace``), a checksum contradicts another dataset's for
        the same file, or the statistics are unusable (:func:`checked_image_statistics`).
    TypeError
        ``loader`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a dataset name must be a non-empty string; got {name!r}")
    if name in DATASETS and not replace:
        raise ValueError(f"dataset {name!r} is already registered; choose another name, or pass "
                         "replace=True to replace it (registered_dataset(...) replaces it for a while)")
    if not callable(loader):
        raise TypeError(f"dataset {name!r}: the loader must be callable as loader(data_dir) -> "
                        f"Dataset; got {type(loader).__name__}")
    checksums = dict(checksums or {})
    for relative, digest in checksums.items():
        if not (isinstance(digest, str) and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)):
            raise ValueError(f"dataset {name!r}: the checksum of {relative!r} must be a sha256 as 64 "
                             f"lowercase hex digits (sha256_of(path)); got {digest!r}")
        for other, declared in _CHECKSUMS_OF.items():
            if other != name and declared.get(relative, digest) != digest:
                raise ValueError(f"dataset {name!r}: {relative!r} has another checksum in dataset "
                                 f"{other!r}; give the file another path, or the same checksum")
    statistics = None if image_statistics is None else _statistics_pair(name, image_statistics)
    _forget(name)
    DATASETS[name] = loader
    _CHECKSUMS_OF[name] = checksums
    SHA256.update(checksums)
    if statistics is not None:
        _IMAGE_STATISTICS[name] = statistics
    if checksums:
        verified_sha256.cache_clear()  # a file hashed before may now have a checksum to meet


def _statistics_pair(name: str, image_statistics) -> ImageStatistics:
    try:
        mean, std = image_statistics
    except (TypeError, ValueError):
        raise ValueError(f"dataset {name!r}: image_statistics must be a pair (mean, std); got "
                         f"{image_statistics!r}") from None
    try:
        return checked_image_statistics(mean, std)
    except ValueError as err:
        raise ValueError(f"dataset {name!r}: {err}") from None


def _forget(name: str) -> None:
    """Remove ``name``'s loader, statistics and the checksums only it declared."""
    DATASETS.pop(name, None)
    _IMAGE_STATISTICS.pop(name, None)
    mine = _CHECKSUMS_OF.pop(name, {})
    shared = {path for declared in _CHECKSUMS_OF.values() for path in declared}
    for relative in set(mine) - shared:
        SHA256.pop(relative, None)
    if mine:
        verified_sha256.cache_clear()


@contextlib.contextmanager
def registered_dataset(name: str, loader: Loader, checksums: dict[str, str] | None = None,
                       image_statistics: tuple | None = None):
    """:func:`register_dataset` for the ``with`` block only (``replace=True``); afterwards the
    dataset registered under ``name`` before, if any, is back as it was. For tests."""
    before = (DATASETS.get(name), _CHECKSUMS_OF.get(name), _IMAGE_STATISTICS.get(name))
    register_dataset(name, loader, checksums, image_statistics, replace=True)
    try:
        yield
    finally:
        _forget(name)
        if before[0] is not None:
            register_dataset(name, *before, replace=True)


def image_statistics(name: str) -> ImageStatistics | None:
    """``(mean, std)`` per channel (0..1 scale) registered for dataset ``name``; None when it
    has none (tabular data, or images to be standardized with the generic statistics).

    Raises
    ------
    DataError
        ``name`` is not a registered dataset.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return _IMAGE_STATISTICS.get(name)


register_dataset("adult", load_adult, ADULT_SHA256)
register_dataset("covtype", load_covtype, COVTYPE_SHA256)
register_dataset("cifar10", load_cifar10, CIFAR10_SHA256, image_statistics=(CIFAR_MEAN, CIFAR_STD))
register_dataset("cifar10-binary", load_cifar10_binary, image_statistics=(CIFAR_MEAN, CIFAR_STD))
register_dataset("toy2d", load_toy2d)
BUILTIN_DATASETS = dict(DATASETS)  # what a freshly started worker process has (harness.runs.runner)

# A dataset at an image size: downsampled once per dataset object and size. The loaders cache
# their datasets, so each worker process downsamples a split once; a few datasets at a few
# sizes are kept.
_AT_IMAGE_SIZE = ObjectCache(maxsize=4)


def load(name: str, data_dir: str | os.PathLike | None = None,
         image_size: int | None = None) -> Dataset:
    """Load a registered dataset by name.

    Parameters
    ----------
    name : str
        A registered dataset (:func:`register_dataset`): the built-in ``adult``, ``covtype``,
        ``cifar10``, ``cifar10-binary``, ``toy2d``, or one of your own.
    data_dir : path, optional
        Directory searched first (see the module docstring for the full order).
    image_size : int, optional
        For image datasets: both splits area-downsampled to this side in pixels
        (:func:`harness.data.images.downsample`), computed once per process and dataset.

    Raises
    ------
    DataError
        Unknown name, missing data with no way to download it, a corrupt file, or an
        ``image_size`` for a dataset without images or one that does not divide their side.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    dataset = DATASETS[name](str(data_dir) if data_dir else None)
    if image_size is None:
        return dataset
    try:
        return _AT_IMAGE_SIZE.get(dataset, lambda d: at_image_size(d, int(image_size)),
                                  tag=int(image_size))
    except ValueError as err:
        raise DataError(f"dataset {name!r} cannot be read at image_size={image_size}: {err}") from err
