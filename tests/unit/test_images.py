"""Input image rules: judged by content, never by name."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from imagejobs.domain.images import MAX_PIXELS, InvalidImage, check_edit_budget, check_edit_inputs, check_image


def encoded(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "short"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_supported_formats_are_recognised_by_content(fmt: str, short: str) -> None:
    checked = check_image(encoded(fmt), name="photo.gif")  # the name says gif; the bytes decide
    assert (checked.format, checked.width, checked.height) == (short, 64, 48)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encoded("GIF", mode="P"), "unsupported_image_format"),
        (encoded("BMP"), "unsupported_image_format"),
        (b"%PDF-1.7 not an image", "unsupported_image_format"),
        (b"", "empty_image"),
        (encoded("PNG", (800, 600))[:-400], "corrupt_image"),
        (encoded("JPEG", (800, 600))[: len(encoded("JPEG", (800, 600))) // 2], "corrupt_image"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidImage) as caught:
        check_image(data)
    assert caught.value.reason == reason


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = encoded("PNG", (8_000, 6_000), mode="1")  # 48 MP in a few kB
    assert len(bomb) < 100_000 and MAX_PIXELS < 8_000 * 6_000
    with pytest.raises(InvalidImage) as caught:
        check_image(bomb)
    assert caught.value.reason == "too_many_pixels"


def test_files_of_50_mb_or_more_are_refused_before_decoding() -> None:
    with pytest.raises(InvalidImage) as caught:
        check_image(b"\x89PNG" + b"\0" * (50 * 1024 * 1024))
    assert caught.value.reason == "image_too_large"


def test_mask_must_be_a_png_of_the_first_images_size() -> None:
    image = check_image(encoded("JPEG", (64, 48)))
    check_edit_inputs([image], check_image(encoded("PNG", (64, 48), mode="RGBA")))
    for mask in (check_image(encoded("PNG", (32, 32))), check_image(encoded("WEBP", (64, 48)))):
        with pytest.raises(InvalidImage) as caught:
            check_edit_inputs([image], mask)
        assert (caught.value.reason, caught.value.param) == ("invalid_mask", "mask")


def test_one_to_sixteen_images() -> None:
    image = check_image(encoded("PNG"))
    check_edit_inputs([image] * 16, None)
    for count in (0, 17):
        with pytest.raises(InvalidImage):
            check_edit_inputs([image] * count, None)


def test_an_edits_inputs_are_counted_and_weighed_before_any_is_read() -> None:
    """16 x 50 MB would not fit in the submit function's 512 MB while it sends them: refused by the
    sizes S3 reports (HEAD), before a byte is read."""
    mb = 1024 * 1024
    check_edit_budget([8 * mb] * 16)
    check_edit_budget([100 * mb], mask_size=20 * mb)
    for sizes, mask, reason in (([1] * 17, 0, "too_many_images"), ([45 * mb] * 3, 0, "inputs_too_large")):
        with pytest.raises(InvalidImage) as caught:
            check_edit_budget(sizes, mask_size=mask)
        assert caught.value.reason == reason
    with pytest.raises(InvalidImage):
        check_edit_budget([100 * mb], mask_size=40 * mb)


def test_an_edits_decode_work_is_bounded_from_the_headers() -> None:
    """Issue #15.8: sixteen 6300x6300 WebPs (70 KB each) took seconds each to decode before they
    were refused. The headers' pixels are counted against MAX_EDIT_PIXELS before any decode."""
    import io

    from PIL import Image

    from imagejobs.domain.images import MAX_EDIT_PIXELS, DecodeBudget, check_header_pixels

    out = io.BytesIO()
    Image.new("RGB", (6300, 6300), (9, 9, 9)).save(out, "WEBP", quality=1)
    with pytest.raises(InvalidImage) as refused:
        check_header_pixels([out.getvalue()] * 2, DecodeBudget())
    assert refused.value.reason == "too_many_pixels" and f"{MAX_EDIT_PIXELS:,}" in refused.value.message
    budget = DecodeBudget()
    check_header_pixels([out.getvalue()], budget)  # one fits: counting took nothing
    assert budget.left == MAX_EDIT_PIXELS


def test_an_output_is_sniffed_and_bounded_as_it_streams() -> None:
    """Issue #21 (10), #20.8: what a provider sends as an image is checked before it is stored (a
    png, jpeg or webp, from its header), counted as it passes (a 1 GiB "image" stops at the cap),
    and tells what was made (size, alpha) for the answer."""
    from imagejobs.domain.images import CheckedOutput, OutputRefused

    made = io.BytesIO()
    Image.new("RGBA", (1536, 1024), (0, 0, 0, 0)).save(made, "PNG")
    data = made.getvalue()
    output = CheckedOutput(iter([data[:100], data[100:]]))
    assert (output.format, output.width, output.height, output.alpha) == ("png", 1536, 1024, True)
    assert b"".join(output) == data and output.bytes == len(data)
    with pytest.raises(OutputRefused):
        CheckedOutput(iter([b"<svg onload=alert(1)>" * 10]))

    def endless() -> Iterator[bytes]:
        yield data
        while True:
            yield b"\0" * 65536

    flood = CheckedOutput(endless(), max_bytes=4 * 1024 * 1024)
    with pytest.raises(OutputRefused):
        for _ in flood:
            pass
    assert flood.bytes <= 4 * 1024 * 1024 + 65536  # stopped at the cap, not read to the end


def test_an_animated_image_is_refused_saying_so() -> None:
    """Issue #21: animated images were accepted as stills."""
    frames = [Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(InvalidImage) as refused:
        check_image(out.getvalue())
    assert refused.value.reason == "animated_image"
