"""Input image rules, judged by content, never by file name (both the HTTP and the S3 path).

png, jpeg and webp only; each file under 50 MB; at most MAX_PIXELS pixels (a decompression bomb
is refused from its header, before any decoding); truncated or corrupt files refused by decoding
them fully; a mask must be a png of the same size as the first image.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from imagejobs.domain.errors import ImageJobsError

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # e.g. 8000 x 5000; far above any size the model takes
MAX_IMAGES = 16
# What one edit's inputs may weigh in all. Submit holds them in memory while it sends them to the
# provider as one multipart request (512 MB function): 16 x 50 MB would not fit, 128 MB does, with
# room for Pillow decoding one image at intake. (Over HTTP, Lambda's 6 MB payload bounds it anyway.)
MAX_EDIT_INPUT_BYTES = 128 * 1024 * 1024
# What one edit may make us decode in all, images and mask: 64 megapixels (16 images of 2000x2000;
# the largest output any model here makes is 8.3 MP). Checked from the headers before any decode,
# so a request of many large images costs header reads, not seconds of decoding for everyone.
MAX_EDIT_PIXELS = 64_000_000
FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpeg", "image/jpeg"), "WEBP": ("webp", "image/webp")}


class InvalidImage(ImageJobsError):
    """An input the provider must never see. `reason` says which rule it broke."""

    reason = "invalid_image"
    status, error_type = 400, "invalid_request_error"

    def __init__(self, message: str, *, reason: str, param: str = "image") -> None:
        super().__init__(message, reason=reason)
        self.param = param


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str  # png | jpeg | webp
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


class DecodeBudget:
    """The pixels one edit may still decode (MAX_EDIT_PIXELS in all)."""

    def __init__(self, pixels: int = MAX_EDIT_PIXELS) -> None:
        self.left = pixels

    def take(self, width: int, height: int, *, param: str = "image") -> None:
        if width * height > self.left:
            raise InvalidImage(
                f"The edit's images have more than {MAX_EDIT_PIXELS:,} pixels in all; send fewer or smaller images.",
                reason="too_many_pixels",
                param=param,
            )
        self.left -= width * height


def image_header(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an image's header alone (no decoding), None if it has none we read."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data)).size
    except Exception:
        return None


def check_header_pixels(images: list[bytes], budget: DecodeBudget) -> None:
    """Before decoding any of them: the pixels their headers declare, against the edit's budget
    (the budget itself is taken as each image is decoded)."""
    probe = DecodeBudget(budget.left)
    for data in images:
        size = image_header(data)
        if size is not None:
            probe.take(*size)


def check_image(
    data: bytes, *, name: str = "image", param: str = "image", budget: DecodeBudget | None = None
) -> CheckedImage:
    if not data:
        raise InvalidImage(f"{name} is empty.", reason="empty_image", param=param)
    if len(data) >= MAX_IMAGE_BYTES:
        raise InvalidImage(
            f"{name} is {len(data) / 1_048_576:.1f} MB; each image must be under 50 MB.",
            reason="image_too_large",
            param=param,
        )
    from PIL import Image, UnidentifiedImageError  # here: only the functions that take images need Pillow

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            fmt = picture.format or ""
            if fmt not in FORMATS:
                raise InvalidImage(
                    f"{name} is {fmt or 'not an image'}; send png, jpeg or webp.",
                    reason="unsupported_image_format",
                    param=param,
                )
            width, height = picture.size
            if width * height > MAX_PIXELS:
                raise InvalidImage(
                    f"{name} is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels.",
                    reason="too_many_pixels",
                    param=param,
                )
            if getattr(picture, "is_animated", False):
                # Pillow reads png (APNG), webp and gif frames; the provider would get the first
                # frame or refuse it, and the caller could not tell which: refused here, saying so.
                raise InvalidImage(
                    f"{name} is animated ({getattr(picture, 'n_frames', 2)} frames); send a still image.",
                    reason="animated_image",
                    param=param,
                )
            if budget is not None:
                budget.take(width, height, param=param)
            picture.load()  # decode it all: truncated or corrupt data fails here
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(
            f"{name} is too many pixels to decode safely.", reason="too_many_pixels", param=param
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            f"{name} is not an image we can read; send png, jpeg or webp.",
            reason="unsupported_image_format",
            param=param,
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"{name} is truncated or corrupt.", reason="corrupt_image", param=param) from exc
    short, content_type = FORMATS[fmt]
    return CheckedImage(data=data, format=short, content_type=content_type, width=width, height=height)


# -- what a provider sends back ---------------------------------------------------------------
# One output's bytes at most: the largest image any model here makes is 3840x2160 (8.3 MP), which
# as a PNG of pure noise (the worst case) is about 25 MB; a provider that sends more is not
# sending an image of the size asked for.
MAX_OUTPUT_BYTES = 48 * 1024 * 1024
SNIFF_BYTES = 64 * 1024  # enough of the head of a png, jpeg or webp for Pillow to read its header


class OutputRefused(ImageJobsError):
    """What the provider sent as an image is not one we store: not png, jpeg or webp, too many
    pixels, or too many bytes. The provider made (and billed) something: the job ends failed and
    charged for what it reported."""

    reason = "output_refused"


class CheckedOutput:
    """A provider's output while it streams into the results bucket: its head is sniffed before
    anything is stored (format, size and alpha from the header, so a job reports what was made),
    and its bytes are counted against `max_bytes` as they pass, so memory and time stay bounded
    whatever the provider sends."""

    def __init__(self, chunks: Iterator[bytes], *, max_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        head = bytearray()
        for chunk in chunks:
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        self._head = bytes(head)
        self.bytes = 0
        self._count(len(head))
        self.format, self.content_type, self.width, self.height, self.alpha = _sniffed(self._head)

    def _count(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self._max_bytes:
            raise OutputRefused(f"an output passed {self._max_bytes // 1_048_576} MB; no image asked for is that large")

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        for chunk in self._chunks:
            self._count(len(chunk))
            yield chunk


def _sniffed(head: bytes) -> tuple[str, str, int, int, bool]:
    """(format, content type, width, height, has alpha) from an output's head, or OutputRefused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(head))
            fmt, (width, height), mode = picture.format or "", picture.size, picture.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise OutputRefused("an output is not an image (png, jpeg or webp)") from exc
    if fmt not in FORMATS:
        raise OutputRefused(f"an output is {fmt or 'not an image'}, not png, jpeg or webp")
    if width * height > MAX_PIXELS:
        raise OutputRefused(f"an output is {width}x{height} pixels, more than any size asked for")
    short, content_type = FORMATS[fmt]
    return short, content_type, width, height, mode in ("RGBA", "LA", "PA", "RGBa", "La")


def check_edit_budget(sizes: list[int], *, mask_size: int = 0) -> None:
    """Before any image is read: the count and the total size of an edit's inputs."""
    if len(sizes) > MAX_IMAGES:
        raise InvalidImage(f"At most {MAX_IMAGES} images per edit; got {len(sizes)}.", reason="too_many_images")
    total = sum(sizes) + mask_size
    if total > MAX_EDIT_INPUT_BYTES:
        raise InvalidImage(
            f"The edit's images weigh {total / 1_048_576:.1f} MB in all; the limit is "
            f"{MAX_EDIT_INPUT_BYTES // 1_048_576} MB (they are sent to the provider in one request).",
            reason="inputs_too_large",
        )


def check_edit_inputs(images: list[CheckedImage], mask: CheckedImage | None) -> None:
    if not images:
        raise InvalidImage("At least one image is required.", reason="missing_image")
    if len(images) > MAX_IMAGES:
        raise InvalidImage(f"At most {MAX_IMAGES} images per edit; got {len(images)}.", reason="too_many_images")
    if mask is None:
        return
    if mask.format != "png":
        raise InvalidImage("The mask must be a png.", reason="invalid_mask", param="mask")
    if (mask.width, mask.height) != (images[0].width, images[0].height):
        raise InvalidImage(
            f"The mask is {mask.width}x{mask.height}; it must match the first image, "
            f"{images[0].width}x{images[0].height}.",
            reason="invalid_mask",
            param="mask",
        )
