"""Real documents for the OCR and document tests, generated on the spot.

Text images are drawn with PIL in DejaVu Sans (Debian: ``apt-get install fonts-dejavu-core``);
PDFs are written with reportlab: a text PDF has a text layer, a "scanned" PDF holds only images
of text; DOCX files come from python-docx.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)
A4_INCHES = (8.27, 11.69)

LINES = [
    "Taskpost invoice 2041 was paid on 3 March 2025.",
    "The quick brown fox jumps over the lazy dog.",
    "Please send the signed contract to the Berlin office.",
]
PAGE_TWO = [
    "Second page: delivery notes and warehouse codes.",
    "Order 7731 ships from Hamburg within five days.",
]
WORDS = (
    "agent", "coordinator", "lease", "queue", "worker", "upload", "result", "retry", "priority",
    "label", "market", "river", "garden", "window", "letter", "number", "station", "morning",
    "evening", "harbour", "mountain", "village", "paper", "engine", "report", "figure", "system",
    "office", "contract", "invoice", "order", "delivery", "customer",
)  # fmt: skip


def font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_PATHS:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    raise RuntimeError("no DejaVu Sans font: apt-get install fonts-dejavu-core")


def text_image(lines: Sequence[str], *, font_size: int = 32, margin: int = 48) -> Image.Image:
    """Black text on white, one line per entry, just large enough to hold it."""
    face = font(font_size)
    step = round(font_size * 1.7)
    width = max(round(face.getlength(line)) for line in lines) + 2 * margin
    image = Image.new("L", (width, 2 * margin + step * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((margin, margin + row * step), line, font=face, fill=0)
    return image


def page_image(lines: Sequence[str], *, dpi: int = 200) -> Image.Image:
    """An A4 page at ``dpi`` with 12 pt text from a 1 inch margin, as a scanner would give it."""
    size = (round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi))
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    face = font(round(12 / 72 * dpi))
    step = round(18 / 72 * dpi)
    for row, line in enumerate(lines):
        draw.text((dpi, dpi + row * step), line, font=face, fill=0)
    return image


def page_lines(count: int, *, seed: int = 0, words: int = 9) -> list[str]:
    """``count`` lines of plausible words and numbers, the same for the same seed."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        line = [rng.choice(WORDS) for _ in range(words)]
        line[rng.randrange(words)] = str(rng.randrange(10, 9999))
        lines.append(" ".join(line).capitalize() + ".")
    return lines


def write_image(path: Path, lines: Sequence[str] = LINES, **kwargs: int) -> Path:
    text_image(lines, **kwargs).save(path)
    return path


def write_tiff(path: Path, pages: Sequence[Sequence[str]] = (LINES, PAGE_TWO)) -> Path:
    """A multi-page TIFF, one text image per page."""
    first, *rest = [text_image(lines) for lines in pages]
    first.save(path, save_all=True, append_images=rest, compression="tiff_deflate")
    return path


def write_text_pdf(path: Path, pages: Sequence[Sequence[str]] = (LINES, PAGE_TWO), **options: str) -> Path:
    """A PDF whose pages carry a text layer (``options`` go to the reportlab canvas)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, **options)
    for lines in pages:
        pdf.setFont("Helvetica", 12)
        for row, line in enumerate(lines):
            pdf.drawString(72, A4[1] - 72 - 18 * row, line)
        pdf.showPage()
    pdf.save()
    return path


def write_pdf(path: Path, pages: Sequence[Sequence[str] | Image.Image]) -> Path:
    """A PDF of A4 pages: a list of strings is a text page, an image is a scanned page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    for page in pages:
        if isinstance(page, Image.Image):
            # Scaled so that the image keeps its pixel size at 200 dpi, from the top-left corner.
            width, height = page.width * 72 / 200, page.height * 72 / 200
            pdf.drawImage(ImageReader(page), 0, A4[1] - height, width=width, height=height)
        else:
            pdf.setFont("Helvetica", 12)
            for row, line in enumerate(page):
                pdf.drawString(72, A4[1] - 72 - 18 * row, line)
        pdf.showPage()
    pdf.save()
    return path


def write_scanned_pdf(path: Path, pages: Sequence[Sequence[str]] = (LINES,)) -> Path:
    """An image-only PDF: each page an A4 scan of its lines at 200 dpi."""
    return write_pdf(path, [page_image(lines) for lines in pages])


def write_mixed_pdf(path: Path) -> Path:
    """Page 1 has a text layer (LINES), page 2 is a scan of PAGE_TWO."""
    return write_pdf(path, [LINES, page_image(PAGE_TWO)])


def write_docx(path: Path) -> Path:
    """A Word file with a title, headings, a bulleted and a numbered list and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Quarterly Report", level=0)
    document.add_paragraph("This report covers the first quarter.")
    document.add_heading("Highlights", level=1)
    for item in ("Revenue grew by 12 percent", "Two new offices opened"):
        document.add_paragraph(item, style="List Bullet")
    document.add_heading("Next steps", level=2)
    for item in ("Hire three engineers", "Ship the new agent"):
        document.add_paragraph(item, style="List Number")
    table = document.add_table(rows=3, cols=3)
    for row, values in enumerate(
        [("Region", "Sales", "Growth"), ("North", "120", "8%"), ("South", "95", "15%")]
    ):
        for col, value in enumerate(values):
            table.cell(row, col).text = value
    document.add_paragraph("End of report.")
    document.save(str(path))
    return path


HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Release notes</title>
<style>body { color: red; } .hidden { display: none; }</style>
<script>var tracking = "do-not-index"; console.log(tracking);</script>
</head>
<body>
<h1>Release notes</h1>
<p>Version <b>2.1</b> adds OCR and document extraction.</p>
<h2>Changes</h2>
<ul><li>New ocr task</li><li>New document task</li></ul>
<script>alert("popup");</script>
<table><tr><th>Task</th><th>Engine</th></tr><tr><td>ocr</td><td>rapidocr</td></tr></table>
</body></html>
"""


def write_html(path: Path) -> Path:
    path.write_text(HTML_PAGE, encoding="utf-8")
    return path
