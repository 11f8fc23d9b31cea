"""The pieces of minunet's self-contained HTML pages: escaped text, and pictures as PNG data URIs in <img> tags
(no file beside the page, nothing to fetch)."""
import base64
import html
import io

import torch

from ..transforms import tensor_to_pil


def png_uri(write_png):
    """The data:image/png;base64 URI, for an <img> src, of the PNG that write_png(file) writes."""
    buf = io.BytesIO()
    write_png(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def picture_uri(image):
    """A (3, h, w) uint8 image, or an (h, w) bool mask (white on black), as a PNG data URI."""
    if image.dim() == 2:
        image = (image.bool().to(torch.uint8) * 255)[None].expand(3, -1, -1)  # (3, h, w)
    return png_uri(lambda file: tensor_to_pil(image.contiguous()).save(file, format="PNG"))


def esc(value):
    """Any value as escaped HTML text."""
    return html.escape(str(value))


def img(uri, alt, cls):
    """An <img> of a data URI."""
    return f'<img class="{cls}" src="{uri}" alt="{esc(alt)}">'
