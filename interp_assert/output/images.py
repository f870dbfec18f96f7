"""Plots as the HTML report embeds them: downscaled to a small palette and encoded losslessly
(WebP, else PNG) in ``data:`` URIs, so that a report of many claims stays small and still
opens anywhere as one file. The full-size PNGs stay in the artifacts folder."""

from __future__ import annotations

import base64
import io
from functools import cache
from pathlib import Path

#: widest embedded plot in pixels (the plots are drawn 750 pixels wide)
MAX_WIDTH = 600
#: colours of the embedded palette (plots are flat colours on white; heatmaps need ~32)
COLOURS = 32


@cache
def _webp() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def compressed_image(path: Path, max_width: int = MAX_WIDTH,
                     colours: int = COLOURS) -> tuple[str, bytes]:
    """``path``'s image at most ``max_width`` pixels wide in ``colours`` colours, as (MIME
    type, bytes): lossless WebP where Pillow writes it, else an optimised palette PNG."""
    from PIL import Image

    with Image.open(path) as image:
        picture = image.convert("RGB")
    if picture.width > max_width:
        height = round(picture.height * max_width / picture.width)
        picture = picture.resize((max_width, height), Image.Resampling.LANCZOS)
    palette = picture.quantize(colors=colours, method=Image.Quantize.FASTOCTREE,
                               dither=Image.Dither.NONE)
    out = io.BytesIO()
    if _webp():
        palette.convert("RGB").save(out, format="WEBP", lossless=True, method=6)
        return "image/webp", out.getvalue()
    palette.save(out, format="PNG", optimize=True)
    return "image/png", out.getvalue()


def data_uri(path: Path | None) -> str | None:
    """A ``data:`` URI of the compressed plot, or None when there is no readable one."""
    if path is None or not path.is_file():
        return None
    try:
        mime, data = compressed_image(path)
    except (OSError, ValueError):  # not an image Pillow reads: embed the file as it is
        try:
            mime, data = "image/png", path.read_bytes()
        except OSError:
            return None
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
