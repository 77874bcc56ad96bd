"""SimCLR: NT-Xent against a per-view loop, per-image augmentation, pre-training, fine-tuning."""

import math

import numpy as np
import pytest
import torch

from harness import methods
from harness.nn import networks, simclr
from tests.test_engine import small, tiny_images


def reference_nt_xent(z1, z2, temperature):
    """The SimCLR paper's loss written as a loop over the 2B views."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    b, total = len(z1), 0.0
    for i in range(2 * b):
        partner = (i + b) % (2 * b)
        others = [j for j in range(2 * b) if j != i]
        logits = torch.stack([z[i] @ z[j] / temperature for j in others])
        total += -(z[i] @ z[partner] / temperature - torch.logsumexp(logits, 0))
    return total / (2 * b)


def test_nt_xent_matches_the_per_view_loop():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    for t in (0.1, 0.5, 1.0):
        assert float(simclr.nt_xent(z1, z2, t)) == pytest.approx(float(reference_nt_xent(z1, z2, t)), rel=1e-5)


def test_nt_xent_rewards_aligned_partners():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    aligned = simclr.nt_xent(z, z + 0.01 * torch.randn(8, 16, generator=g), 0.5)
    shuffled = simclr.nt_xent(z, z[torch.randperm(8, generator=g)], 0.5)
    assert aligned < shuffled
    # Unrelated views: about log(2B - 1), the loss of a uniform guess among the candidates.
    assert float(simclr.nt_xent(torch.ones(8, 4), torch.ones(8, 4), 0.5)) == pytest.approx(math.log(15), rel=1e-5)


def test_resized_crop_geometry():
    images = torch.rand(2, 3, 8, 8)
    ones, zeros = torch.ones(2), torch.zeros(2)
    whole = simclr.resized_crop_at(images, ones, ones, zeros, zeros, torch.tensor([False, True]))
    assert torch.allclose(whole[0], images[0], atol=1e-5)  # the whole image, unflipped
    assert torch.allclose(whole[1], images[1].flip(-1), atol=1e-5)  # mirrored
    # The top-left quarter, blown up 2x: bilinear upsampling of that corner (interior pixels;
    # the borders differ only in how each pads).
    corner = simclr.resized_crop_at(images, ones / 2, ones / 2, -ones / 2, -ones / 2, torch.tensor([False, False]))
    expected = torch.nn.functional.interpolate(images[:, :, :4, :4], scale_factor=2, mode="bilinear",
                                               align_corners=False)
    assert torch.allclose(corner[:, :, 1:-1, 1:-1], expected[:, :, 1:-1, 1:-1], atol=1e-5)


def test_random_crops_stay_inside_and_respect_the_scale():
    images = torch.rand(256, 3, 8, 8)
    out = simclr.random_resized_crop_flip(images, torch.Generator().manual_seed(0), scale_min=1.0)
    # Area 1 crops keep (a stretched version of) the whole image: the mean barely moves.
    assert torch.allclose(out.mean((1, 2, 3)), images.mean((1, 2, 3)), atol=0.05)


def test_views_are_drawn_per_image():
    batch = torch.full((64, 16, 16, 3), 128, dtype=torch.uint8)
    batch[:, :8] = 250  # same image 64 times: top half bright
    views = simclr.simclr_view(batch, torch.Generator().manual_seed(0), 0.2)
    assert views.shape == (64, 3, 16, 16) and views.is_contiguous(memory_format=torch.channels_last)
    distinct = {tuple(v.flatten()[::37].round(decimals=3).tolist()) for v in views}
    assert len(distinct) > 50  # one draw per batch would give a single variant


def test_colour_ops_keep_range_and_luma():
    images = torch.rand(16, 3, 6, 6)
    gray = simclr.grayscale(images)
    assert torch.allclose(gray, 0.299 * images[:, :1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:])
    rotated = simclr.rotate_hue(images, torch.full((16,), 0.7))
    assert torch.allclose(simclr.grayscale(rotated), gray, atol=1e-5)  # hue leaves luma alone
    assert torch.allclose(simclr.rotate_hue(images, torch.zeros(16)), images, atol=1e-5)
    jittered = simclr.color_jitter(images, torch.Generator().manual_seed(0), p=1.0)
    assert jittered.min() >= 0 and jittered.max() <= 1 and not torch.allclose(jittered, images)
    assert torch.equal(simclr.color_jitter(images, torch.Generator().manual_seed(0), p=0.0), images)


def rotate_hue_as_it_was(images, angle):
    """``simclr.rotate_hue`` before its matrices became constants: YIQ built and inverted per call."""
    to_yiq = torch.tensor(simclr.RGB_TO_YIQ, device=images.device)
    from_yiq = torch.linalg.inv(to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(images), 3, 3, device=images.device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    return torch.einsum("nij,njhw->nihw", from_yiq @ rotation @ to_yiq, images)


def grayscale_as_it_was(images):
    weights = torch.tensor(simclr.GRAY, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def test_views_are_bitwise_what_they_were_and_invert_no_matrix(monkeypatch):
    """The colour matrices are constants (the YIQ inverse computed once, not per view on the
    device); a seeded view is bit for bit the view of before."""
    batch = torch.randint(0, 256, (16, 12, 12, 3), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
    with monkeypatch.context() as old:
        old.setattr(simclr, "rotate_hue", rotate_hue_as_it_was)
        old.setattr(simclr, "grayscale", grayscale_as_it_was)
        expected = simclr.simclr_view(batch, torch.Generator().manual_seed(1), 0.2)
    angle = torch.linspace(-0.6, 0.6, 16)
    images = batch.permute(0, 3, 1, 2).float() / 255
    rotated = rotate_hue_as_it_was(images, angle)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.linalg.inv called while augmenting")

    monkeypatch.setattr(torch.linalg, "inv", refuse)
    got = simclr.simclr_view(batch, torch.Generator().manual_seed(1), 0.2)
    assert torch.equal(got, expected)
    assert torch.equal(simclr.rotate_hue(images, angle), rotated)
    assert simclr.color_constants(images.device)[2] is simclr.color_constants(images.device)[2]


def test_split_and_replace_classifier_share_the_encoder():
    for arch in ("small_cnn", "resnet34"):
        net = networks.build_network(arch, 3, 8).eval()
        encoder, head = networks.split_classifier(net)
        x = torch.randn(2, 3, 16, 16)
        features = encoder(x)
        assert torch.allclose(net.get_submodule(head)(features), net(x), atol=1e-5)
        before = net.get_submodule(head).weight.clone()
        networks.replace_classifier(net, 5)
        assert net(x).shape == (2, 5) and not torch.equal(before[:3], net.get_submodule(head).weight[:3])


def test_simclr_method_pretrains_fine_tunes_and_reports_a_linear_probe():
    x, y = tiny_images()
    model = small(epochs=4).fit(x, y, method=methods.create("simclr", epochs=3,
                                                            batch_size=8, projection_dim=8))
    assert model.log["simclr_epochs"] == 3 and model.log["epochs_run"] == 4
    assert np.isfinite(model.log["simclr_loss_last_epoch"])
    assert np.mean(model.predict(x) == y) >= 0.9
    variants = model.predict_variants(x)
    assert set(variants) == {"linear_probe"} and np.mean(variants["linear_probe"] == y) >= 0.9


def test_pretraining_lowers_the_contrastive_loss():
    x, y = tiny_images(per_class=32, classes=3)
    model = small(epochs=1).fit(x, y, method=methods.create(
        "simclr", epochs=12, batch_size=32, projection_dim=16, lr=0.1))
    assert model.log["simclr_loss_last_epoch"] < model.log["simclr_loss_first_epoch"]


def test_pretrained_weights_load_by_name_and_shape(tmp_path):
    x, y = tiny_images()
    source = networks.build_network("small_cnn", 7, 4)  # other head size: the head is never loaded
    torch.save(source.state_dict(), tmp_path / "w.pt")
    model = small(epochs=0).fit(x, y, method=imagenet(str(tmp_path / "w.pt")))
    assert torch.equal(model.net.state_dict()["0.weight"], source.state_dict()["0.weight"])
    assert model.log["pretrained_tensors_loaded"] == model.log["pretrained_tensors_total"]
    wrong = networks.build_network("small_cnn", 2, 8)  # another width: nothing matches
    torch.save(wrong.state_dict(), tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="same architecture"):
        small(epochs=0).fit(x, y, method=imagenet(str(tmp_path / "wrong.pt")))
    with pytest.raises(ValueError, match="pretrained_weights"):
        small(epochs=0).fit(x, y, method=imagenet(""))


def imagenet(path: str):
    return methods.create("simclr_imagenet", pretrained_weights=path)
