"""Regenerate the demo's bundled samples in taskpost/samples/ (needs espeak-ng, sox and Pillow).

speech.wav: a short English sentence spoken by espeak-ng, 16 kHz mono.
scanned_page.png: a page of text rendered with DejaVu Sans, slightly rotated, speckled and
blurred like a scan.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

SAMPLES = Path(__file__).resolve().parent.parent / "taskpost" / "samples"
SPEECH = (
    "Taskpost runs media jobs without Redis. The coordinator keeps every task in a database,"
    " and agents claim them under a lease."
)
PAGE_LINES = [
    "Taskpost sample page",
    "This page was scanned at 200 dpi.",
    "Agents claim tasks under a lease,",
    "download inputs and upload results.",
    "Nothing is lost when an agent dies.",
]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def make_speech(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), SPEECH], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(target)], check=True)


def make_scanned_page(target: Path) -> None:
    font = ImageFont.truetype(FONT, 34)
    page = Image.new("L", (1400, 700), 248)
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(PAGE_LINES):
        draw.text((80, 60 + 110 * index), line, fill=20, font=font)
    page = page.rotate(0.6, fillcolor=248, resample=Image.Resampling.BICUBIC)
    rng = random.Random(7)
    pixels = page.load()
    assert pixels is not None
    for _ in range(6000):
        pixels[rng.randrange(page.width), rng.randrange(page.height)] = rng.choice([200, 160, 230])
    page.filter(ImageFilter.GaussianBlur(0.6)).save(target, optimize=True)


if __name__ == "__main__":
    SAMPLES.mkdir(parents=True, exist_ok=True)
    make_speech(SAMPLES / "speech.wav")
    make_scanned_page(SAMPLES / "scanned_page.png")
    print(f"samples written to {SAMPLES}")
