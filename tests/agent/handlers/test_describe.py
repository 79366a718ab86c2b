"""``describe`` against a fake OpenAI-compatible server on 127.0.0.1: the image goes as a data: URL
in an image_url part; bad images and missing settings fail with their kinds."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskpost.agent.handlers.base import HandlerError
from taskpost.agent.handlers.describe import DescribeHandler
from taskpost.agent.llm import images
from taskpost.agent.settings import AgentSettings
from tests.agent.handlers.conftest import RecordingContext
from tests.support.fake_llm import FakeLlm, expected_answer, fake_llm

pytest.importorskip("openai", reason="needs taskpost[llm]")
Image = pytest.importorskip("PIL.Image", reason="needs Pillow (taskpost[ocr])")

KEY = "sk-describe-secret-93ab"


@pytest.fixture
def llm() -> Iterator[FakeLlm]:
    with fake_llm() as server:
        yield server


@pytest.fixture
def make_handler(llm: FakeLlm, make_settings: Callable[..., AgentSettings]) -> Callable[..., DescribeHandler]:
    def make(**overrides: Any) -> DescribeHandler:
        values = {"llm_base_url": llm.base_url, "llm_api_key": KEY, "llm_model": "vision-model", **overrides}
        handler = DescribeHandler()
        handler.setup(make_settings(**values))
        return handler

    return make


def _image(folder: Path, name: str, fmt: str) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, format=fmt)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path


def _ctx(tmp_path: Path, files: list[Path], params: dict[str, Any] | None = None) -> RecordingContext:
    return RecordingContext(
        job_id="job-1",
        task_type="describe",
        attempt=1,
        params=params or {},
        inputs={path.name: path for path in files},
        work_dir=tmp_path / "work",
    )


def test_an_uploaded_png_is_sent_as_a_data_url_and_described(
    make_handler: Callable[..., DescribeHandler], llm: FakeLlm, tmp_path: Path
) -> None:
    png = _image(tmp_path / "in", "red.png", "PNG")
    ctx = _ctx(tmp_path, [png], {"prompt": "What colour is it?", "max_tokens": 50})
    result = make_handler().run(ctx)

    [request] = llm.requests
    assert request.body["model"] == "vision-model" and request.body["max_tokens"] == 50
    assert request.messages[0]["content"][0] == {"type": "text", "text": "What colour is it?"}
    [url] = request.image_urls()
    assert url == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    assert result["description"] == expected_answer("What colour is it?")
    assert result["image"] == {
        "name": "red.png",
        "mime": "image/png",
        "width": 32,
        "height": 24,
        "bytes": len(png.read_bytes()),
    }
    assert (result["model"], result["provider"], result["cost"]) == ("vision-model", "default", None)
    assert result["prompt_tokens"] == 4 and result["completion_tokens"] == 1
    assert (ctx.output_dir / "description.txt").read_text() == result["description"] + "\n"
    assert KEY not in str(result)


def test_a_bmp_is_converted_to_png_and_the_image_param_picks_an_input(
    make_handler: Callable[..., DescribeHandler], llm: FakeLlm, tmp_path: Path
) -> None:
    bmp = _image(tmp_path / "in", "scan.bmp", "BMP")
    other = _image(tmp_path / "in", "other.jpg", "JPEG")
    result = make_handler().run(_ctx(tmp_path, [bmp, other], {"image": {"input": "scan.bmp"}}))
    assert result["image"]["mime"] == "image/png"
    [url] = llm.requests[0].image_urls()
    data = base64.b64decode(url.removeprefix("data:image/png;base64,"))
    with Image.open(io.BytesIO(data)) as sent:
        assert (sent.format, sent.size) == ("PNG", (32, 24))


@pytest.mark.parametrize(
    ("case", "kind"),
    [("text", "unsupported_input"), ("large", "too_large"), ("two", "bad_params"), ("no_model", "llm_model")],
)
def test_bad_images_and_settings_fail_without_calling_the_model(
    make_handler: Callable[..., DescribeHandler],
    llm: FakeLlm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    kind: str,
) -> None:
    png = _image(tmp_path / "in", "a.png", "PNG")
    files = [png]
    overrides: dict[str, Any] = {}
    if case == "text":
        files = [tmp_path / "in" / "notes.txt"]
        files[0].write_text("not an image")
    elif case == "large":
        monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 10)
    elif case == "two":
        files.append(_image(tmp_path / "in", "b.png", "PNG"))
    else:
        overrides["llm_model"] = None
    with pytest.raises(HandlerError) as caught:
        make_handler(**overrides).run(_ctx(tmp_path, files))
    assert (caught.value.kind, caught.value.retryable) == (kind, False)
    assert llm.requests == []
