"""What the simulated provider makes: real images (Pillow) in the requested size, format and
background, or noise; and the OpenAI-style usage block it reports, honest or, for the `evil_*`
markers, hostile."""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from imagejobs_local.sim_behaviour import OUTPUT_TOKENS, OUTPUT_TOKENS_GPT_IMAGE_2, dimensions


def render(request: dict[str, Any], index: int, source: bytes | None = None) -> bytes:
    """A real image in the requested size, format and background (content derived from the prompt).
    For an edit, the given image transformed visibly: mirrored, posterized, tinted, captioned."""
    width, height = dimensions(str(request.get("size", "auto")))
    fmt = str(request.get("output_format", "png"))
    seed = hashlib.sha256(f"{request.get('prompt')}#{index}".encode()).digest()
    transparent = request.get("background") == "transparent" and fmt in ("png", "webp")
    mode = "RGBA" if transparent else "RGB"
    if source is not None:
        original = Image.open(io.BytesIO(source)).convert("RGB")
        if request.get("size", "auto") == "auto":
            width, height = original.size
        edited = ImageOps.posterize(ImageOps.mirror(original.resize((width, height))), 3)
        tint = Image.new("RGB", (width, height), (seed[0], seed[1], seed[2]))
        image = Image.blend(edited, tint, 0.3).convert(mode)
    else:
        image = Image.new(mode, (width, height), (0, 0, 0, 0) if transparent else (seed[0], seed[1], seed[2]))
    draw = ImageDraw.Draw(image)
    for band in range(8 if source is None else 2):
        colour = (seed[3 + band], seed[11 + band], seed[19 + band], 255)
        inset = band * min(width, height) // 18
        draw.ellipse((inset, inset, width - inset, height - inset), outline=colour, width=12)
    font = ImageFont.load_default(size=max(16, width // 32))
    draw.text((32, 32), str(request.get("prompt", ""))[:60], fill=(255, 255, 255, 255), font=font)
    draw.text((32, height - 80), f"image {index + 1} - simulated provider", fill=(255, 255, 255, 255), font=font)
    out = io.BytesIO()
    # Fast PNG compression: these images are flat colour and compress well anyway, and encoding
    # at the default level was the biggest piece of our own CPU time in `make bench` throughput.
    save_args: dict[str, Any] = {"compress_level": 1} if fmt == "png" else {}
    if fmt in ("jpeg", "webp") and request.get("output_compression") is not None:
        save_args["quality"] = max(1, int(request["output_compression"]))
    image.save(out, format={"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt], **save_args)
    return out.getvalue()


def noise(request: dict[str, Any], index: int) -> bytes:
    """Random pixels in the requested size: a PNG that does not compress (about 4.7 MB at 1536x1024)."""
    width, height = dimensions(str(request.get("size", "auto")))
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(index).randbytes(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def evil_usage(usage: dict[str, Any], evil: frozenset[str]) -> dict[str, Any]:
    if "usage_negative" in evil:
        usage["output_tokens"] = -2_000_000
    if "usage_dear" in evil:  # $2,400 of output at $48 per million: integers, and past any reservation
        usage["output_tokens"] = 50_000_000
    if "usage_huge" in evil:
        usage["output_tokens"] = 10**12
    if "usage_strings" in evil:
        usage = {name: str(value) if isinstance(value, int) else value for name, value in usage.items()}
    if "usage_float" in evil:
        usage["output_tokens"] = 1e40
    if any(kind.startswith("usage_") for kind in evil) and isinstance(usage.get("output_tokens"), int):
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    return usage


def usage_of(request: dict[str, Any], edited: bool = False) -> dict[str, Any]:
    quality = str(request.get("quality", "auto"))
    table = OUTPUT_TOKENS_GPT_IMAGE_2 if str(request.get("model", "")).endswith("gpt-image-2") else OUTPUT_TOKENS
    per_image = table.get(quality, table["medium"])
    text_tokens = max(1, len(str(request.get("prompt", ""))) // 4)
    image_tokens = 323 if edited else 0  # an input image at low fidelity, roughly
    output = per_image * int(request.get("n", 1))
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output,
        "total_tokens": text_tokens + image_tokens + output,
    }
