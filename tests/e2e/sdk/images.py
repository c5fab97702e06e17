"""OpenAI's image calls as OpenAI's image generation guide shows them, with the official Python SDK
at its defaults; only the base URL and key point at imagejobs. Prints one JSON line per call.

    python images.py generate PROMPT | edit PROMPT IMAGE.png
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["IMAGEJOBS_BASE_URL"] + "/v1", api_key=os.environ["IMAGEJOBS_API_KEY"])


def main(call: str, prompt: str, *files: str) -> None:
    started = time.monotonic()
    try:
        if call == "generate":
            result = client.images.generate(model="gpt-image-1", prompt=prompt, quality="low")
        else:
            # open files, as OpenAI's guide passes them (the process ends right after the call)
            images = [open(name, "rb") for name in files]  # noqa: SIM115
            result = client.images.edit(model="gpt-image-1", image=images, prompt=prompt)
    except openai.APIStatusError as error:
        print(json.dumps({"error": type(error).__name__, "status": error.status_code, "message": error.message}))
        return
    image = base64.b64decode(result.data[0].b64_json)  # the user's next line, in OpenAI's guide
    seconds = round(time.monotonic() - started, 2)
    print(json.dumps({"images": len(result.data), "png": image[:8] == b"\x89PNG\r\n\x1a\n", "seconds": seconds}))


if __name__ == "__main__":
    main(*sys.argv[1:])
