"""Joint image/mask transforms: geometry keeps image and mask together, colour leaves the mask alone,
a seed reproduces the augmentation exactly."""
import math

import pytest
import torch
from PIL import Image

from minunet.transforms import (IMAGENET_MEAN, IMAGENET_STD, ColorJitter, Compose, Normalize, RandomHorizontalFlip,
                                RandomRotation, RandomScaleShift, RandomVerticalFlip, Resize, ToFloat, eval_transforms,
                                pil_to_tensor, train_transforms)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def blob(h=48, w=64):
    """A smooth, asymmetric uint8 image (3, h, w) and the mask made from it: red channel > 128."""
    y = torch.linspace(-1, 1, h)[:, None]  # (h, 1)
    x = torch.linspace(-1, 1, w)[None, :]  # (1, w)
    red = 255 * torch.exp(-((x - 0.3) ** 2 / 0.15 + (y + 0.2) ** 2 / 0.3))  # (h, w) off-centre ellipse
    green = 255 * (x + 1) / 2 * torch.ones(h, 1)  # (h, w) left-right ramp
    blue = 255 * (y + 1) / 2 * torch.ones(1, w)  # (h, w) top-bottom ramp
    image = torch.stack([red, green, blue]).round().to(torch.uint8)  # (3, h, w)
    mask = (image[:1] > 128).to(torch.uint8)  # (1, h, w)
    return image, mask


def disagreement(image, mask):
    """Fraction of pixels where the mask differs from the red-channel threshold of the image."""
    red = image[0].float() * (255 if image.is_floating_point() else 1)
    return ((red > 128) != mask[0].bool()).float().mean().item()


def test_pil_to_tensor_rgb_matches_pixels():
    img = Image.new("RGB", (5, 3))
    img.putpixel((4, 2), (10, 20, 30))
    img.putpixel((1, 0), (200, 100, 50))
    t = pil_to_tensor(img)
    assert t.shape == (3, 3, 5) and t.dtype == torch.uint8
    assert t[:, 2, 4].tolist() == [10, 20, 30]
    assert t[:, 0, 1].tolist() == [200, 100, 50]
    assert t.sum().item() == 10 + 20 + 30 + 200 + 100 + 50


def test_pil_to_tensor_converts_gray_rgba_palette():
    gray = Image.new("L", (4, 2), 77)
    assert pil_to_tensor(gray).shape == (3, 2, 4)
    assert pil_to_tensor(gray).unique().tolist() == [77]
    rgba = Image.new("RGBA", (4, 2), (1, 2, 3, 0))
    assert pil_to_tensor(rgba)[:, 1, 3].tolist() == [1, 2, 3]  # alpha dropped
    palette = Image.new("RGB", (4, 2), (9, 8, 7)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert pil_to_tensor(palette)[:, 0, 0].tolist() == [9, 8, 7]
    mask = pil_to_tensor(Image.new("L", (4, 2), 255), mode="L")
    assert mask.shape == (1, 2, 4) and mask.unique().tolist() == [255]


def test_flips_are_exact():
    image, mask = blob()
    i, m = RandomHorizontalFlip(p=1.0)(image, mask)
    assert torch.equal(i, image.flip(-1)) and torch.equal(m, mask.flip(-1))
    i, m = RandomVerticalFlip(p=1.0)(image, mask)
    assert torch.equal(i, image.flip(-2)) and torch.equal(m, mask.flip(-2))
    i, m = RandomHorizontalFlip(p=0.0)(image, mask)
    assert torch.equal(i, image) and torch.equal(m, mask)
    assert disagreement(*RandomVerticalFlip(p=1.0)(image, mask)) == 0.0


def test_flip_probability():
    g = torch.Generator().manual_seed(0)
    flip = RandomHorizontalFlip(p=0.5, generator=g)
    image, mask = blob()
    flipped = sum(not torch.equal(flip(image, mask)[0], image) for _ in range(200))
    assert 70 < flipped < 130


def test_rotation_by_zero_is_identity():
    image, mask = blob()
    i, m = RandomRotation(0)(image, mask)
    assert torch.equal(i, image) and torch.equal(m, mask)
    f = image.float() / 255
    i, _ = RandomRotation(0)(f, mask)
    assert torch.allclose(i, f, atol=1e-6)


def test_rotation_by_90_is_rot90_counter_clockwise():
    image, mask = blob(40, 40)
    i, m = RandomRotation((90, 90))(image, mask)
    assert torch.equal(m, torch.rot90(mask, 1, dims=(-2, -1)))
    assert (i.int() - torch.rot90(image, 1, dims=(-2, -1)).int()).abs().max() <= 1


def test_rotation_is_rigid_on_non_square_images():
    # a centred disc is unchanged by any rotation, if the rotation does not stretch the picture
    h, w = 48, 96
    y = torch.arange(h)[:, None] - (h - 1) / 2
    x = torch.arange(w)[None, :] - (w - 1) / 2
    r2 = x * x + y * y  # (h, w) squared distance to the centre
    disc = (r2 < 18 ** 2).to(torch.uint8)[None]  # (1, h, w)
    image = disc.expand(3, -1, -1) * 255
    _, m = RandomRotation((45, 45))(image, disc)
    inside = r2 < 23 ** 2  # points that rotate in from inside the picture (the corners hold reflections)
    inter, union = (m & disc)[0][inside].sum().item(), (m | disc)[0][inside].sum().item()
    assert inter / union > 0.95
    stretched = (x * x / 4 + y * y < 18 ** 2).to(torch.uint8)[None]  # (1, h, w) an ellipse, 2:1
    _, m = RandomRotation((90, 90))(stretched.expand(3, -1, -1) * 255, stretched)
    assert m[0, (h - 1) // 2, w // 2 - 20].item() == 0  # turned upright: narrow in x...
    assert m[0, 3, w // 2].item() == 1  # ...and tall in y


def test_rotation_fills_corners_by_reflection():
    image = torch.full((3, 30, 50), 200, dtype=torch.uint8)
    mask = torch.ones(1, 30, 50, dtype=torch.uint8)
    i, m = RandomRotation((30, 30))(image, mask)
    assert (i == 200).all()  # no black or garbage corners
    assert (m == 1).all()


@pytest.mark.parametrize("transform", [
    Resize(32),
    Resize((40, 24)),
    RandomRotation((30, 30)),
    RandomRotation((-25, -25)),
    RandomRotation((180, 180)),
    RandomHorizontalFlip(p=1.0),
    RandomVerticalFlip(p=1.0),
    Compose([RandomRotation((17, 17)), RandomHorizontalFlip(p=1.0), RandomVerticalFlip(p=1.0)]),
    RandomScaleShift((1.3, 1.3), (0.1, 0.1)),
    RandomScaleShift((0.8, 0.8), (-0.15, -0.15)),
], ids=repr)
def test_mask_follows_image_through_geometric_transforms(transform):
    image, mask = blob()
    assert disagreement(image, mask) == 0.0
    i, m = transform(image, mask)
    assert i.dtype == image.dtype and m.dtype == mask.dtype
    assert m.unique().tolist() == [0, 1]
    # the mask still marks where the transformed image is bright: only boundary pixels may differ
    assert disagreement(i, m) < 0.02
    # and the float path agrees with the uint8 path
    fi, fm = transform(image.float() / 255, mask)
    assert fi.is_floating_point() and torch.equal(fm, m)
    assert (fi * 255 - i.float()).abs().max() <= 1.0


def test_random_rotations_keep_masks_binary_and_aligned():
    g = torch.Generator().manual_seed(1)
    rotate = RandomRotation(30, generator=g)
    image, mask = blob()
    for _ in range(20):
        i, m = rotate(image, mask.float())
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert disagreement(i, m) < 0.02


def test_resize_shapes_and_constant_image():
    image = torch.full((3, 30, 50), 123, dtype=torch.uint8)
    mask = torch.zeros(1, 30, 50, dtype=torch.uint8)
    mask[:, :, 25:] = 1
    i, m = Resize(20)(image, mask)
    assert i.shape == (3, 20, 20) and m.shape == (1, 20, 20)
    assert (i == 123).all()
    assert (m[:, :, 10:] == 1).all() and (m[:, :, :10] == 0).all()


def test_color_jitter_changes_image_not_mask():
    g = torch.Generator().manual_seed(0)
    image, mask = blob()
    jitter = ColorJitter(0.5, 0.5, 0.5, generator=g)
    i, m = jitter(image, mask)
    assert m is mask
    assert i.dtype == torch.uint8 and i.shape == image.shape
    assert not torch.equal(i, image)
    i, m = jitter(image.float() / 255, mask)
    assert m is mask and i.min() >= 0 and i.max() <= 1
    assert torch.equal(ColorJitter()(image, mask)[0], image)  # amounts of 0 do nothing


def test_color_jitter_each_property():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25  # (3, 16, 16)
    gray = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]  # (16, 16)
    g = torch.Generator().manual_seed(3)
    i, _ = ColorJitter(brightness=0.3, generator=g)(image, None)
    ratio = i / image
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), atol=1e-5)  # one factor for all
    assert 0.7 <= ratio.flatten()[0] <= 1.3 and abs(ratio.flatten()[0] - 1) > 1e-4
    i, _ = ColorJitter(saturation=0.3, generator=g)(image, None)
    assert torch.allclose(0.299 * i[0] + 0.587 * i[1] + 0.114 * i[2], gray, atol=1e-5)  # luma kept
    assert not torch.allclose(i, image)
    i, _ = ColorJitter(contrast=0.3, generator=g)(image, None)
    assert math.isclose((0.299 * i[0] + 0.587 * i[1] + 0.114 * i[2]).mean().item(), gray.mean().item(),
                        abs_tol=1e-5)  # mean luma kept
    assert not torch.allclose(i, image)


def test_normalize():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    image = torch.tensor(IMAGENET_MEAN).view(3, 1, 1).expand(3, 4, 5)
    mask = torch.ones(1, 4, 5)
    i, m = Normalize()(image, mask)
    assert m is mask and torch.allclose(i, torch.zeros(3, 4, 5), atol=1e-6)
    white = torch.full((3, 4, 5), 255, dtype=torch.uint8)
    i, _ = Normalize()(white, mask)
    expected = [(1 - mu) / sd for mu, sd in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert i.dtype == torch.float32 and torch.allclose(i[:, 0, 0], torch.tensor(expected))
    i, _ = eval_transforms()(white, mask)
    assert torch.allclose(i[:, 2, 3], torch.tensor(expected))
    assert ToFloat()(white, mask)[0].max().item() == 1.0


def test_train_transforms_output_and_seed_reproduce():
    image, mask = blob(64, 64)
    a = train_transforms(torch.Generator().manual_seed(7))
    b = train_transforms(torch.Generator().manual_seed(7))
    c = train_transforms(torch.Generator().manual_seed(8))
    outs_a = [a(image, mask) for _ in range(5)]
    outs_b = [b(image, mask) for _ in range(5)]
    outs_c = [c(image, mask) for _ in range(5)]
    for (ia, ma), (ib, mb) in zip(outs_a, outs_b):
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
        assert ia.shape == (3, 64, 64) and ia.dtype == torch.float32
        assert set(ma.unique().tolist()) <= {0, 1}
    assert any(not torch.equal(ia, ic) for (ia, _), (ic, _) in zip(outs_a, outs_c))
    assert len({tuple(m.flatten().tolist()) for _, m in outs_a}) > 1  # the augmentation varies


def test_random_transforms_draw_only_from_their_generator():
    image, mask = blob()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    t = train_transforms(torch.Generator().manual_seed(1))
    for _ in range(3):
        t(image, mask)
    assert torch.equal(torch.rand(3), expected)  # the global generator was not touched


def test_normalize_repr_is_readable():
    # float32 tensors hold 0.485 as 0.48500001430...; the repr (printed by tutorial 02) shows the given values
    assert repr(Normalize()) == "Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))"


def test_tensor_to_pil_inverts_pil_to_tensor():
    from minunet.transforms import pil_to_tensor, tensor_to_pil

    g = torch.Generator().manual_seed(0)
    for channels, mode in ((3, "RGB"), (1, "L")):
        t = torch.randint(0, 256, (channels, 7, 5), generator=g, dtype=torch.uint8)
        img = tensor_to_pil(t)
        assert img.mode == mode and img.size == (5, 7)
        assert torch.equal(pil_to_tensor(img, mode), t)


# ---------------------------------------------------------------- zoom and shift

def square(h, w, top, left, side):
    """A uint8 image (3, h, w), white on black where a side x side square starts at (top, left), and its mask."""
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[:, top:top + side, left:left + side] = 1
    return mask.expand(3, -1, -1) * 255, mask


def test_scale_shift_of_zero_is_identity():
    image, mask = blob()
    i, m = RandomScaleShift(0, 0, generator=torch.Generator().manual_seed(0))(image, mask)
    assert torch.equal(i, image) and torch.equal(m, mask)
    f = image.float() / 255
    i, _ = RandomScaleShift(0, 0)(f, mask)
    assert torch.allclose(i, f, atol=1e-6)


@pytest.mark.parametrize("h,w,fraction", [(32, 32, 0.25), (24, 40, 0.125), (40, 24, -0.25)])
def test_shift_moves_a_line_by_the_expected_pixels(h, w, fraction):
    # a one-pixel-wide vertical line moves by fraction * w in x, a horizontal one by fraction * h in y
    column, row = w // 2 - 3, h // 2 + 2
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[0, :, column] = 1
    _, m = RandomScaleShift((1, 1), (fraction, fraction))(mask.expand(3, -1, -1) * 255, mask)
    expected = torch.zeros_like(mask)
    expected[0, :, column + round(fraction * w)] = 1
    assert torch.equal(m, expected)
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[0, row, :] = 1
    i, m = RandomScaleShift((1, 1), (fraction, fraction))(mask.expand(3, -1, -1) * 255, mask)
    expected = torch.zeros_like(mask)
    expected[0, row + round(fraction * h), :] = 1
    assert torch.equal(m, expected) and torch.equal(i, expected.expand(3, -1, -1) * 255)


@pytest.mark.parametrize("h,w", [(32, 32), (32, 48)])
def test_zoom_by_two_doubles_a_centred_square(h, w):
    image, mask = square(h, w, h // 2 - 4, w // 2 - 4, 8)
    i, m = RandomScaleShift((2, 2), (0, 0))(image, mask)
    rows = m[0].any(dim=1).nonzero().flatten()
    cols = m[0].any(dim=0).nonzero().flatten()
    assert abs(len(rows) - 16) <= 1 and abs(len(cols) - 16) <= 1  # the side doubles (within a pixel)
    assert rows.tolist() == list(range(rows[0], rows[-1] + 1))  # still one square, centred
    assert abs((rows[0] + rows[-1]).item() / 2 - (h - 1) / 2) <= 0.5
    assert abs((cols[0] + cols[-1]).item() / 2 - (w - 1) / 2) <= 0.5
    assert m.sum().item() == len(rows) * len(cols)
    _, m = RandomScaleShift((0.5, 0.5), (0, 0))(image, mask)
    centre = m[0, h // 4:3 * h // 4, w // 4:3 * w // 4]  # (h/2, w/2) the picture itself; reflections outside
    assert abs(centre.any(dim=1).sum().item() - 4) <= 1  # and zooming out halves it
    assert abs(centre.any(dim=0).sum().item() - 4) <= 1


def test_random_scale_shift_keeps_mask_binary_and_with_the_image():
    g = torch.Generator().manual_seed(2)
    t = RandomScaleShift(0.3, 0.2, generator=g)
    image, mask = square(40, 56, 10, 20, 14)
    blob_image, blob_mask = blob()
    for _ in range(10):
        i, m = t(image, mask.float())
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert disagreement(i, m) < 0.02  # the mask still marks the image's own bright square
        i, m = t(blob_image, blob_mask)
        assert m.dtype == torch.uint8 and set(m.unique().tolist()) <= {0, 1}
        assert disagreement(i, m) < 0.02


def test_scale_shift_same_seed_same_output_and_draws_only_from_its_generator():
    image, mask = blob()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a = RandomScaleShift(generator=torch.Generator().manual_seed(5))
    b = RandomScaleShift(generator=torch.Generator().manual_seed(5))
    outs = [(a(image, mask), b(image, mask)) for _ in range(4)]
    assert torch.equal(torch.rand(3), expected)  # the global generator was not touched
    for (ia, ma), (ib, mb) in outs:
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
    assert len({tuple(m.flatten().tolist()) for (_, m), _ in outs}) > 1  # the draws vary


def test_train_transforms_defaults_are_the_pipeline_without_scale_shift():
    image, mask = blob(64, 64)
    g = torch.Generator().manual_seed(7)
    by_hand = Compose([  # today's list, written out
        ToFloat(),
        RandomRotation(30, generator=g),
        RandomHorizontalFlip(0.5, generator=g),
        RandomVerticalFlip(0.5, generator=g),
        ColorJitter(0.2, 0.2, 0.2, generator=g),
        Normalize(),
    ])
    ours = train_transforms(torch.Generator().manual_seed(7))
    assert not any(isinstance(t, RandomScaleShift) for t in ours.transforms)
    for _ in range(5):
        (i, m), (ri, rm) = ours(image, mask), by_hand(image, mask)
        assert torch.equal(i, ri) and torch.equal(m, rm)
    with_zoom = train_transforms(torch.Generator().manual_seed(7), scale=0.2, shift=0.1)
    kinds = [type(t) for t in with_zoom.transforms]
    assert kinds.index(RandomScaleShift) == kinds.index(RandomRotation) + 1
    assert type(train_transforms(shift=0.1).transforms[2]) is RandomScaleShift
    i, m = with_zoom(image, mask)
    assert i.shape == (3, 64, 64) and set(m.unique().tolist()) <= {0, 1}
