"""An image file as the ``data:`` URL that vision models take in an ``image_url`` content part.

PNG, JPEG, GIF and WebP are sent as they are; other formats Pillow reads (TIFF, BMP, ...) are
converted to PNG. Without Pillow only the four web formats are accepted, judged by their first bytes.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from taskpost.agent.handlers.base import HandlerError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
WEB_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


@dataclass(frozen=True)
class ImageData:
    mime: str
    data: bytes
    width: int | None = None
    height: int | None = None

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"

    def summary(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "mime": self.mime,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
        }


def load_image(path: Path) -> ImageData:
    """The image at ``path``, ready to send; ``HandlerError`` when it is too large or no image."""
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise _too_large(path.name, size)
    data = path.read_bytes()
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return _sniffed(path.name, data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format in WEB_FORMATS:
                return ImageData(WEB_FORMATS[image.format], data, image.width, image.height)
            converted = io.BytesIO()
            image.save(converted, format="PNG")
            width, height = image.width, image.height
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _not_image(path.name) from exc
    if converted.tell() > MAX_IMAGE_BYTES:
        raise _too_large(path.name, converted.tell())
    return ImageData("image/png", converted.getvalue(), width, height)


def _sniffed(name: str, data: bytes) -> ImageData:
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return ImageData(WEB_FORMATS[kind], data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageData(WEB_FORMATS["WEBP"], data)
    raise _not_image(name)


def _not_image(name: str) -> HandlerError:
    return HandlerError(
        f"{name} is not an image the describe task reads (PNG, JPEG, GIF, WebP, or any Pillow reads)",
        retryable=False,
        kind="unsupported_input",
    )


def _too_large(name: str, size: int) -> HandlerError:
    return HandlerError(
        f"{name} is {size / 1024**2:.1f} MB; images up to {MAX_IMAGE_BYTES // 1024**2} MB are sent",
        retryable=False,
        kind="too_large",
    )
