"""Images at a network's input size: the numpy area downsampling equals torch's average pooling
with rounding, and a dataset read at an image size is downsampled once per process."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import data
from harness.data.images import at_image_size, downsample


def torch_reference(images: np.ndarray, size: int) -> np.ndarray:
    """How the engine resized images before: float average pooling, rounded."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, images.shape[1] // size)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


@settings(max_examples=40, deadline=None)
@given(factor=st.sampled_from([2, 3, 4, 8, 16, 32]), n=st.integers(1, 4), seed=st.integers(0, 10_000),
       channels=st.sampled_from([1, 3]))
def test_downsample_equals_torch_average_pooling(factor, n, seed, channels):
    side = 32 if 32 % factor == 0 else 3 * factor
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, side, side, channels), dtype=np.uint8)
    out = downsample(images, side // factor)
    assert out.dtype == np.uint8 and out.shape == (n, side // factor, side // factor, channels)
    assert np.array_equal(out, torch_reference(images, side // factor))


def test_downsample_rounds_half_to_even_like_torch():
    # 2x2 blocks averaging to k + 0.5: round half to even, as torch.round does.
    halves = np.zeros((2, 2, 2, 1), dtype=np.uint8)
    halves[0, 0, 0] = 2    # mean 0.5 -> 0
    halves[1, 0, :] = 3    # mean 1.5 -> 2
    assert downsample(halves, 1).ravel().tolist() == [0, 2]
    assert np.array_equal(downsample(halves, 1), torch_reference(halves, 1))


def test_downsample_is_per_image_and_checks_its_input():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    rows = [4, 0, 4, 2]
    assert np.array_equal(downsample(images, 4)[rows], downsample(images[rows], 4))
    assert downsample(images, 8) is images  # native size: untouched
    with pytest.raises(ValueError, match="must divide"):
        downsample(images, 3)
    with pytest.raises(ValueError, match="uint8 NHWC"):
        downsample(images.astype(np.float32), 4)


def test_a_dataset_at_an_image_size_is_downsampled_once():
    rng = np.random.default_rng(1)
    native = data.Dataset("tiny", rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8),
                          np.arange(10) % 2, rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
                          np.arange(4) % 2, ("a", "b"), {"kind": "synthetic"})
    with data.registered_dataset("tiny", lambda data_dir=None: native):
        small = data.load("tiny", image_size=4)
        assert small.x_train.shape == (10, 4, 4, 3) and small.y_train is native.y_train
        assert np.array_equal(small.x_test, downsample(native.x_test, 4))
        assert data.load("tiny", image_size=4) is small  # cached for this dataset object
        assert data.load("tiny") is native
    assert at_image_size(native, 8).x_train is native.x_train


def test_an_image_size_for_a_dataset_without_images_is_a_data_error():
    table = data.Dataset("table", np.zeros((4, 3), np.float32), np.arange(4) % 2,
                         np.zeros((2, 3), np.float32), np.arange(2) % 2, ("a", "b"))
    with (data.registered_dataset("table", lambda data_dir=None: table),
          pytest.raises(data.DataError, match="'table' cannot be read at image_size=16.*uint8 NHWC")):
        data.load("table", image_size=16)
