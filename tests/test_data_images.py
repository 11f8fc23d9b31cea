"""Reading one image or mask file (minunet.data.images): EXIF orientation, 16-bit and float pixels, every image mode,
the kinds of mask values, and one clear line for each file that cannot be read. Each expected tensor is built
here from the pixels written, in plain torch."""
import os
import struct
import warnings
import zlib

import pytest
import torch
from PIL import Image

from minunet.data import DataError, read_image, read_mask
from minunet.data.images import read_pair
from minunet.transforms import tensor_to_pil

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ORIENTATION = 0x0112  # the EXIF tag


def pixels(shape, seed=0, high=256):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int32)


def stored_for(shown, orientation):
    """The pixels a file with EXIF `orientation` stores so that viewers show `shown` (C, H, W) (EXIF's table)."""
    turn = {1: lambda a: a, 2: lambda a: a.flip(-1), 3: lambda a: a.flip(-1, -2), 4: lambda a: a.flip(-2),
            5: lambda a: a.transpose(-1, -2), 6: lambda a: torch.rot90(a, 1, (-2, -1)),
            7: lambda a: a.transpose(-1, -2).flip(-1, -2), 8: lambda a: torch.rot90(a, -1, (-2, -1))}
    return turn[orientation](shown)


def save(t, path, orientation=None, **kwargs):
    """Write a uint8 (1|3, H, W) tensor, with an EXIF orientation tag if given."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    tensor_to_pil(t.to(torch.uint8).contiguous()).save(path, exif=exif, **kwargs)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_images_and_masks(tmp_path, orientation):
    shown = pixels((3, 3, 5)).to(torch.uint8)  # (3, H, W) as a viewer shows it
    shown_mask = (pixels((1, 3, 5), seed=1, high=2) * 255).to(torch.uint8)
    save(stored_for(shown, orientation), tmp_path / "a.png", orientation)
    save(stored_for(shown_mask, orientation), tmp_path / "a_mask.png", orientation)
    assert torch.equal(read_image(tmp_path / "a.png"), shown)
    mask, kind = read_mask(tmp_path / "a_mask.png")
    assert torch.equal(mask, shown_mask // 255) and kind == "0/255"


def test_a_sideways_jpeg_lines_up_with_its_mask_as_shown(tmp_path):
    shown = torch.linspace(0, 255, 40).round().to(torch.uint8).view(1, 1, 40).expand(3, 30, 40).clone()
    shown[:, :10] = 0  # a dark band along the top, as shown
    save(stored_for(shown, 6), tmp_path / "a.jpg", 6, quality=95)  # stored 30 wide, 40 high
    image = read_image(tmp_path / "a.jpg")
    assert image.shape == (3, 30, 40) and (image.int() - shown.int()).abs().float().mean() < 3
    save(torch.zeros(1, 30, 40), tmp_path / "shown.png")
    image, mask, kind = read_pair(tmp_path / "a.jpg", tmp_path / "shown.png")  # a mask drawn as shown fits
    assert mask.shape == (1, 30, 40) and kind == "empty"
    save(torch.zeros(1, 40, 30), tmp_path / "stored.png")  # a mask drawn on the stored pixels does not
    with pytest.raises(DataError) as e:
        read_pair(tmp_path / "a.jpg", tmp_path / "stored.png")
    assert str(e.value) == (f"mask {tmp_path / 'stored.png'} is 30x40 but its image {tmp_path / 'a.jpg'} is "
                            f"40x30 as shown (its EXIF orientation turns the stored 30x40 pixels): draw the mask on "
                            f"the image as viewers show it, or remove the image's orientation tag")


def png_16bit_rgb(path, values):
    """Write a 16-bit RGB PNG (which Pillow cannot write) of int values (3, H, W) in [0, 65535], by hand."""
    _, h, w = values.shape
    rows = b"".join(b"\x00" + struct.pack(f">{3 * w}H", *values[:, y].T.flatten().tolist()) for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_16_bit_images_keep_their_high_byte_and_are_never_clipped(tmp_path):
    values = pixels((1, 4, 6), high=65536)  # (1, H, W) in [0, 65535]
    values[0, 0, :4] = torch.tensor([0, 255, 256, 65535])
    Image.frombytes("I;16", (6, 4), b"".join(struct.pack("<H", v) for v in values.flatten().tolist())) \
        .save(tmp_path / "gray.png")
    assert Image.open(tmp_path / "gray.png").mode == "I;16"
    expected = (values // 256).to(torch.uint8).expand(3, -1, -1)  # the high byte, in each of R, G, B
    assert torch.equal(read_image(tmp_path / "gray.png"), expected)
    assert read_image(tmp_path / "gray.png")[0, 0, :4].tolist() == [0, 0, 1, 255]
    # an ordinary 16-bit photograph (8-bit values times 257) reads back exactly, not all white
    eight = pixels((1, 4, 6), seed=3).to(torch.uint8)
    Image.frombytes("I;16", (6, 4), b"".join(struct.pack("<H", 257 * v) for v in eight.flatten().tolist())) \
        .save(tmp_path / "photo.png")
    assert torch.equal(read_image(tmp_path / "photo.png"), eight.expand(3, -1, -1))
    # 16-bit colour: Pillow keeps the high byte itself, so gray and colour agree
    colour = pixels((3, 4, 6), seed=4, high=65536)
    png_16bit_rgb(tmp_path / "colour.png", colour)
    assert torch.equal(read_image(tmp_path / "colour.png"), (colour // 256).to(torch.uint8))


def test_32_bit_and_float_images(tmp_path):
    values = pixels((1, 2, 3), high=65536)
    wide = Image.frombytes("I", (3, 2), b"".join(struct.pack("=i", v) for v in values.flatten().tolist()))
    wide.save(tmp_path / "wide.tif")
    assert torch.equal(read_image(tmp_path / "wide.tif"), (values // 256).to(torch.uint8).expand(3, -1, -1))
    Image.frombytes("I", (1, 1), struct.pack("=i", 70000)).save(tmp_path / "wider.tif")
    with pytest.raises(DataError, match=r"wider\.tif: its pixels run from 70000 to 70000, beyond 16 bits: save"):
        read_image(tmp_path / "wider.tif")
    floats = [0.0, 0.25, 0.5, 1.0, 0.999, 0.001]
    Image.frombytes("F", (3, 2), struct.pack("=6f", *floats)).save(tmp_path / "float.tif")
    expected = torch.tensor(floats, dtype=torch.float32).mul(255).round().to(torch.uint8).view(1, 2, 3)
    assert torch.equal(read_image(tmp_path / "float.tif"), expected.expand(3, -1, -1))
    Image.frombytes("F", (1, 1), struct.pack("=f", 2.5)).save(tmp_path / "big.tif")
    with pytest.raises(DataError, match=r"big\.tif: its floating-point pixels run from 2.5 to 2.5, not 0 to 1"):
        read_image(tmp_path / "big.tif")


def test_one_bit_gray_alpha_cmyk_and_transparent_palette_images_become_rgb(tmp_path):
    bits = pixels((1, 3, 4), high=2).to(torch.uint8)
    tensor_to_pil(bits * 255).convert("1").save(tmp_path / "bits.png")
    assert Image.open(tmp_path / "bits.png").mode == "1"
    assert torch.equal(read_image(tmp_path / "bits.png"), (bits * 255).expand(3, -1, -1))
    gray, alpha = pixels((1, 3, 4), seed=1).to(torch.uint8), pixels((1, 3, 4), seed=2).to(torch.uint8)
    Image.merge("LA", (tensor_to_pil(gray), tensor_to_pil(alpha))).save(tmp_path / "la.png")
    assert torch.equal(read_image(tmp_path / "la.png"), gray.expand(3, -1, -1))  # alpha dropped
    cmy = pixels((3, 3, 4), seed=5).to(torch.uint8)  # CMYK with no black: R, G, B = 255 - C, M, Y
    cmyk = torch.cat([cmy, torch.zeros(1, 3, 4, dtype=torch.uint8)])
    Image.frombytes("CMYK", (4, 3), bytes(cmyk.permute(1, 2, 0).flatten().tolist())).save(tmp_path / "cmyk.tif")
    assert torch.equal(read_image(tmp_path / "cmyk.tif"), 255 - cmy)
    palette = torch.tensor([[0, 0, 0], [200, 30, 10], [10, 220, 40]], dtype=torch.uint8)
    index = pixels((3, 4), seed=3, high=3)
    p = Image.frombytes("P", (4, 3), bytes(index.flatten().tolist()))
    p.putpalette(palette.flatten().tolist())
    p.save(tmp_path / "p.png", transparency=b"\x00\x80\xff")  # a transparency per palette entry
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without Pillow's warning about such palettes
        assert torch.equal(read_image(tmp_path / "p.png"), palette[index].permute(2, 0, 1))


@pytest.mark.parametrize("values,kind,lesion", [
    ([0, 255, 255, 0], "0/255", [0, 1, 1, 0]),
    ([255, 255, 255, 255], "0/255", [1, 1, 1, 1]),
    ([0, 1, 1, 0], "0/1", [0, 1, 1, 0]),  # an 8-bit PNG that looks black: 1 is lesion
    ([1, 1, 1, 1], "0/1", [1, 1, 1, 1]),
    ([0, 127, 128, 200], "grey", [0, 0, 1, 1]),  # anti-aliased or noisy: > 127
    ([0, 1, 255, 255], "grey", [0, 0, 1, 1]),
    ([0, 0, 0, 0], "empty", [0, 0, 0, 0]),
    ([0, 2, 2, 0], "0/2", [0, 1, 1, 0]),  # a label map of two classes (issue 23): 2 is lesion, not binarised away
    ([3, 3, 0, 3], "0/3", [1, 1, 0, 1]),
    ([0, 100, 100, 0], "0/100", [0, 1, 1, 0]),  # every value below 128: no lesion would survive > 127
    ([0, 1, 2, 0], "0/1/2", [0, 1, 1, 0]),  # classes: refused for a split (minunet.data.masks), non-zero here
])
def test_mask_values_are_read_by_kind(tmp_path, values, kind, lesion):
    save(torch.tensor(values, dtype=torch.uint8).view(1, 1, 4), tmp_path / "m.png")
    mask, found = read_mask(tmp_path / "m.png")
    assert found == kind and mask.dtype == torch.uint8 and mask.flatten().tolist() == lesion


def test_masks_in_other_modes(tmp_path):
    lesion = pixels((1, 3, 4), high=2).to(torch.uint8)
    lesion[0, 0, :2] = torch.tensor([0, 1])  # both values, whatever the draw
    for name, img in [("bits", tensor_to_pil(lesion * 255).convert("1")),
                      ("rgb", tensor_to_pil((lesion * 255).expand(3, -1, -1).contiguous())),
                      ("la", tensor_to_pil(lesion * 255).convert("LA")),
                      ("p", tensor_to_pil(lesion * 255).convert("P"))]:
        img.save(tmp_path / f"{name}.png")
        mask, kind = read_mask(tmp_path / f"{name}.png")
        assert torch.equal(mask, lesion) and kind == "0/255", name
    for values, kind, expected in [(lesion.int(), "0/1", lesion), (lesion.int() * 65535, "0/255", lesion),
                                   (lesion.int() * 40000, "grey", lesion),
                                   (lesion.int() * 255, "0/255", lesion),  # 8-bit values in 16 bits (issue 23)
                                   (lesion.int() * 3, "0/3", lesion)]:  # a 16-bit label map
        Image.frombytes("I;16", (4, 3), b"".join(struct.pack("<H", v) for v in values.flatten().tolist())) \
            .save(tmp_path / "deep.png")
        mask, found = read_mask(tmp_path / "deep.png")
        assert torch.equal(mask, expected) and found == kind


def test_colour_and_transparent_masks_are_refused_in_one_line(tmp_path):
    red = torch.zeros(3, 2, 2, dtype=torch.uint8)
    red[0, 0, 0] = 255  # a red lesion pixel: as gray it would be 76, below 127, and the lesion lost
    tensor_to_pil(red).save(tmp_path / "red.png")
    with pytest.raises(DataError) as e:
        read_mask(tmp_path / "red.png")
    assert str(e.value) == (f"mask {tmp_path / 'red.png'} is in colour (its red, green and blue differ): save it "
                            f"in grayscale, 0 for background and 255 for lesion")
    clear = tensor_to_pil(torch.full((1, 2, 2), 255, dtype=torch.uint8)).convert("LA")
    clear.putalpha(0)
    clear.save(tmp_path / "clear.png")
    with pytest.raises(DataError) as e:
        read_mask(tmp_path / "clear.png")
    assert str(e.value) == (f"mask {tmp_path / 'clear.png'} has transparent pixels: save it without "
                            f"transparency, 0 for background and 255 for lesion")


def test_files_that_are_not_images_each_say_what_they_are(tmp_path, monkeypatch):
    good = tmp_path / "good.png"
    save(torch.zeros(3, 2, 2), good)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    expected = {
        "empty.png": "the file is empty (0 bytes): copy it again, or remove it",
        "folder.jpg": "it is a folder, not an image file: move or rename it",
        "link.png": f"it is a broken link (to {tmp_path / 'gone.png'}, which does not exist): fix or remove the link",
        "missing.png": "no such file",
    }
    for name, problem in expected.items():
        for read in (read_image, read_mask):
            with pytest.raises(DataError) as e:
                read(str(tmp_path / name))
            assert str(e.value) == f"cannot read {tmp_path / name}: {problem}"
    with pytest.raises(DataError) as e:
        read_pair(str(good), str(tmp_path / "folder.jpg"))
    assert "folder.jpg: it is a folder" in str(e.value)

    def locked(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Image, "open", locked)
    with pytest.raises(DataError) as e:
        read_image(str(good))
    assert str(e.value) == f"cannot read {good}: permission denied: make it readable (chmod a+r)"
