"""Data loading: real files where present, lookup order, clear errors, the CIFAR-10 zip decoder."""

import io
import zipfile

import numpy as np
import pytest

from harness import data

from .conftest import shared_data_available


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No shared data, an empty cache, no network: only what the test puts in place."""
    monkeypatch.setattr(data, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    for loader in (data.load_adult, data.load_covtype, data.load_cifar10, data.verified_sha256):
        loader.cache_clear()
    yield tmp_path
    for loader in (data.load_adult, data.load_covtype, data.load_cifar10, data.verified_sha256):
        loader.cache_clear()


@pytest.mark.skipif(not shared_data_available("adult/adult.data"), reason="Adult not present")
def test_adult_real_files():
    adult = data.load("adult")
    assert adult.x_train.shape[0] == 32_561 and adult.x_test.shape[0] == 16_281
    assert np.bincount(adult.y_train).tolist() == [24_720, 7_841]  # >50K is label 1, the minority
    assert np.bincount(adult.y_test).tolist() == [12_435, 3_846]
    assert adult.x_train.shape[1] == adult.x_test.shape[1]
    assert adult.class_names == ("<=50K", ">50K")
    assert adult.source["variant"] == "uci-original"


@pytest.mark.parametrize("name, file", [("adult", "adult/adult.data"), ("covtype", "covtype/covtype-sample.csv.gz")])
def test_a_tabular_dataset_parsed_once_is_read_back_identical(name, file, monkeypatch, tmp_path):
    """The parsed arrays are cached by the data's checksum and the parser's source: the second
    load reads them back (no parsing), bit for bit what the parse made."""
    if not shared_data_available(file):
        pytest.skip(f"{file} not present")
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path))
    loader = {"adult": data.load_adult, "covtype": data.load_covtype}[name]
    loader.cache_clear()
    parsed = data.load(name)
    assert list((tmp_path / name).glob("*.npz"))
    loader.cache_clear()
    def parsing(*args, **kwargs):
        pytest.fail("parsed again although cached")

    # the parsers' own calls (patching the parsers would change the parser digest, the key)
    monkeypatch.setattr(data.csv, "reader", parsing)
    monkeypatch.setattr(data.np, "loadtxt", parsing)
    cached = data.load(name)
    loader.cache_clear()
    for split in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(parsed, split), getattr(cached, split))
        assert getattr(parsed, split).dtype == getattr(cached, split).dtype
    assert parsed.categorical == cached.categorical and parsed.source == cached.source


def test_a_changed_parser_never_reads_an_older_parsers_arrays():
    def parse_a(x):
        return x

    def parse_b(x):
        return x + 1

    assert data.parser_digest(parse_a) != data.parser_digest(parse_b)


def test_cached_arrays_rebuild_a_truncated_file_and_survive_an_unwritable_cache(tmp_path):
    path = tmp_path / "x" / "a.npz"
    build = lambda: {"a": np.arange(3)}  # noqa: E731
    assert data.cached_arrays(path, build)["a"].tolist() == [0, 1, 2] and path.is_file()
    path.write_bytes(b"PK\x03\x04 truncated")
    assert data.cached_arrays(path, build)["a"].tolist() == [0, 1, 2]
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert data.cached_arrays(blocked / "a.npz", build)["a"].tolist() == [0, 1, 2]


@pytest.mark.skipif(not shared_data_available("covtype/covtype-sample.csv.gz"), reason="no sample")
def test_covtype_binary_split_is_fixed_and_stratified():
    cov = data.load("covtype")
    assert cov.class_names == ("Lodgepole Pine", "Spruce/Fir")  # Spruce/Fir is the minority
    total = np.bincount(cov.y_train) + np.bincount(cov.y_test)
    assert total.tolist() == [45_328, 33_894]
    frac = np.bincount(cov.y_test) / total
    assert np.allclose(frac, data.COVTYPE_TEST_FRACTION, atol=1e-3)
    assert cov.x_train.shape[1] == 54


def test_missing_data_names_the_three_fixes(isolated):
    with pytest.raises(data.DataError) as err:
        data.load("adult", data_dir=isolated / "nowhere")
    message = str(err.value)
    assert "--data-dir" in message and data.DATA_DIR_ENV in message and "shared" in message
    assert "network is unreachable" in message


def test_corrupt_file_is_rejected_with_its_path(isolated):
    folder = isolated / "mine" / "adult"
    folder.mkdir(parents=True)
    (folder / "adult.data").write_text("39, State-gov, 77516\n")
    with pytest.raises(data.DataError, match="corrupt or not the expected file"):
        data.load("adult", data_dir=isolated / "mine")


def test_explicit_dir_comes_before_environment(isolated, monkeypatch):
    for name in ("first", "second"):
        (isolated / name / "adult").mkdir(parents=True)
        (isolated / name / "adult" / "adult.data").write_text(name)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(isolated / "second"))
    kind, path = data.locate("adult/adult.data", isolated / "first")
    assert kind == "data-dir" and "first" in str(path)
    kind, path = data.locate("adult/adult.data")
    assert kind == "env" and "second" in str(path)


def test_unknown_dataset():
    with pytest.raises(data.DataError, match="unknown dataset 'mnist'"):
        data.load("mnist")


def fake_cifar_zip(path):
    from PIL import Image

    with zipfile.ZipFile(path, "w") as archive:
        for split, per_class in (("train", 2), ("test", 1)):
            for label, name in enumerate(data.CIFAR10_CLASSES[:3]):
                for i in range(per_class):
                    buffer = io.BytesIO()
                    Image.new("RGB", (32, 32), (label * 80, i * 50, 0)).save(buffer, "JPEG", quality=95)
                    archive.writestr(f"{split}/{name}/{i:04d}.jpg", buffer.getvalue())


def test_zip_members_read_stored_and_compressed_members_as_zipfile_does(tmp_path):
    """The CIFAR-10 pack's members are sliced out of the archive by their header offsets; a
    compressed member (or one with an extra field) reads through zipfile."""
    path = tmp_path / "mixed.zip"
    payloads = {"b/stored.bin": bytes(range(256)) * 3, "a/deflated.bin": b"x" * 1000, "c/empty": b""}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("b/stored.bin", payloads["b/stored.bin"])
        archive.writestr("a/deflated.bin", payloads["a/deflated.bin"], zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("c/empty")
        info.extra = b"\x99\x99\x02\x00ab"  # an extra field shifts where the data starts
        archive.writestr(info, b"")
        archive.mkdir("d")
    members = [(name, bytes(blob)) for name, blob in data.zip_members(path)]
    assert members == sorted(payloads.items())


def test_a_grayscale_jpeg_in_the_pack_decodes_to_rgb(isolated, monkeypatch):
    from PIL import Image

    path = isolated / "gray.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "test"):
            buffer = io.BytesIO()
            Image.new("L", (32, 32), 120).save(buffer, "JPEG")
            archive.writestr(f"{split}/cat/0000.jpg", buffer.getvalue())
    x_train, y_train, x_test, _ = data.decode_cifar_zip(path)
    assert x_train.shape == (1, 32, 32, 3) and (x_train == x_train[..., :1]).all()
    assert y_train.tolist() == [data.CIFAR10_CLASSES.index("cat")]


def test_cifar_zip_decodes_to_uint8_and_is_cached(isolated, monkeypatch):
    folder = isolated / "mine" / "cifar10"
    folder.mkdir(parents=True)
    fake_cifar_zip(folder / "cifar10-jpeg.zip")
    monkeypatch.setitem(data.SHA256, "cifar10/cifar10-jpeg.zip", data.sha256_of(folder / "cifar10-jpeg.zip"))
    cifar = data.load("cifar10", data_dir=isolated / "mine")
    assert cifar.x_train.dtype == np.uint8 and cifar.x_train.shape == (6, 32, 32, 3)
    assert cifar.y_train.tolist() == [0, 0, 1, 1, 2, 2] and cifar.y_test.tolist() == [0, 1, 2]
    assert abs(int(cifar.x_train[2, 0, 0, 0]) - 80) < 8  # the colour survived JPEG
    assert cifar.source["variant"] == "jpeg-zip"
    assert list((isolated / "cache" / "cifar10").glob("*.npz"))  # decoded once, cached
    binary = data.load("cifar10-binary", data_dir=isolated / "mine")
    assert set(binary.y_train.tolist()) == {0, 1} and binary.class_names == ("airplane", "automobile")


def tiny_dataset(name="mine"):
    return data.Dataset(name, np.zeros((4, 2, 2, 3), np.uint8), np.arange(4) % 2,
                        np.zeros((2, 2, 2, 3), np.uint8), np.arange(2) % 2, ("a", "b"))


def test_a_registered_dataset_loads_by_name_with_its_checksums_and_statistics():
    dataset, digest = tiny_dataset(), "ab" * 32
    with data.registered_dataset("mine", lambda data_dir=None: dataset, {"mine/train.bin": digest},
                                 image_statistics=((0.1, 0.2, 0.3), 0.2)):
        assert data.load("mine") is dataset
        assert data.SHA256["mine/train.bin"] == digest
        assert data.image_statistics("mine") == ((0.1, 0.2, 0.3), (0.2, 0.2, 0.2))
        assert "mine" not in data.BUILTIN_DATASETS
    assert "mine" not in data.DATASETS and "mine/train.bin" not in data.SHA256
    with pytest.raises(data.DataError, match="unknown dataset 'mine'"):
        data.image_statistics("mine")


def test_the_builtin_datasets_are_registered_with_their_facts():
    assert set(data.BUILTIN_DATASETS) == {"adult", "covtype", "cifar10", "cifar10-binary", "toy2d"}
    assert data.DATASETS["cifar10"] is data.load_cifar10
    for name in ("cifar10", "cifar10-binary"):
        assert data.image_statistics(name) == (data.CIFAR_MEAN, data.CIFAR_STD)
    for name in ("adult", "covtype", "toy2d"):
        assert data.image_statistics(name) is None
    assert set(data.SHA256) >= set(data.ADULT_SHA256) | set(data.CIFAR10_SHA256)


def test_a_taken_name_is_refused_and_replacing_puts_the_old_dataset_back():
    with pytest.raises(ValueError, match="dataset 'adult' is already registered.*replace=True"):
        data.register_dataset("adult", lambda data_dir=None: tiny_dataset("adult"))
    with data.registered_dataset("adult", lambda data_dir=None: tiny_dataset("adult"),
                                 image_statistics=(0.5, 0.25)):
        assert data.load("adult").x_train.shape == (4, 2, 2, 3)
        assert data.image_statistics("adult") == ((0.5,), (0.25,))
        assert "adult/adult.data" not in data.SHA256  # the replaced dataset's checksums went too
    assert data.DATASETS["adult"] is data.load_adult and data.image_statistics("adult") is None
    assert data.SHA256["adult/adult.data"] == data.ADULT_SHA256["adult/adult.data"]


@pytest.mark.parametrize("statistics, message", [
    ((0.5, 0.0), "std must be finite and greater than 0.*give it std 1"),
    ((0.5, float("nan")), "std must be finite and greater than 0"),
    (((0.5, 0.5), (0.2, 0.2, 0.2)), "mean has 2 channels and std 3; give one value per channel"),
    ((125.3, 63.0), "mean must lie in 0..1.*divide 0..255 pixel statistics by 255"),
    ((0.5,), "image_statistics must be a pair \\(mean, std\\)"),
    (("bright", 0.2), "mean must be a number or one number per channel"),
])
def test_unusable_image_statistics_are_refused_with_the_fix(statistics, message):
    with pytest.raises(ValueError, match=f"dataset 'mine': .*{message}"):
        data.register_dataset("mine", lambda data_dir=None: tiny_dataset(), image_statistics=statistics)
    assert "mine" not in data.DATASETS  # nothing half-registered


def test_a_loader_that_is_not_callable_and_a_contradicting_checksum_are_refused():
    with pytest.raises(TypeError, match="loader must be callable"):
        data.register_dataset("mine", tiny_dataset())
    with pytest.raises(ValueError, match="'adult/adult.data' has another checksum in dataset 'adult'"):
        data.register_dataset("mine", tiny_dataset, {"adult/adult.data": "0" * 64})
    with pytest.raises(ValueError, match="sha256 as 64 lowercase hex digits"):
        data.register_dataset("mine", tiny_dataset, {"mine/x": "not-a-digest"})
    assert "mine" not in data.DATASETS


def test_a_registered_checksum_is_checked(isolated, monkeypatch):
    folder = isolated / "given" / "mine"
    folder.mkdir(parents=True)
    (folder / "train.bin").write_bytes(b"not the published bytes")
    with (data.registered_dataset("mine", tiny_dataset, {"mine/train.bin": "0" * 64}),
          pytest.raises(data.DataError, match="train.bin is corrupt")):
        data.fetch_file("mine", "mine/train.bin", None, isolated / "given")
