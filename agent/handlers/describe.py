"""``describe``: a description of an image by an OpenAI-compatible vision model.

Params (``DescribeParams``): the image as ``image`` (``{"input": NAME}``; the coordinator rewrites
``{"from_job": ...}`` to that), ``local_path`` or ``input``, else the job's only input; ``prompt``
("Describe this image."), ``model``, ``provider``, ``max_tokens``, ``temperature``. The image is
sent as a ``data:`` URL (up to 20 MB; formats other than PNG/JPEG/GIF/WebP converted to PNG).

Result: ``{"description", "model", "provider", "prompt_tokens", "completion_tokens", "latency_s",
"cost", "image": {"name", "mime", "width", "height", "bytes"}}``. Output: ``description.txt``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

from taskpost.agent.handlers.base import HandlerError, TaskContext
from taskpost.agent.handlers.params import DescribeParams, Params
from taskpost.agent.llm.client import Cancelled
from taskpost.agent.llm.images import load_image
from taskpost.agent.llm.runtime import LlmHandler
from taskpost.agent.llm.sources import job_image
from taskpost.agent.workdir import write_private_text


class DescribeHandler(LlmHandler):
    """Asks a vision model to describe one image."""

    task_type = "describe"
    params_model: ClassVar[type[Params]] = DescribeParams

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        try:
            params = DescribeParams.model_validate(ctx.params)
        except ValidationError as exc:
            raise HandlerError(f"bad params: {exc}", retryable=False, kind="bad_params") from exc
        path = job_image(ctx, params.image)
        image = load_image(path)
        provider = self.provider(provider=params.provider, model=params.model)
        content = [
            {"type": "text", "text": params.prompt},
            {"type": "image_url", "image_url": {"url": image.data_url}},
        ]
        if ctx.is_cancelled():
            return {"cancelled": True}
        ctx.heartbeat(0.0, f"asking {provider.model} about {path.name}")
        with self.client(ctx, provider) as client:
            try:
                completion = client.chat(
                    [{"role": "user", "content": content}],
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                )
            except Cancelled:
                return {"cancelled": True}
        if not completion.answer:
            raise HandlerError(f"{provider.model} returned an empty description", kind="empty_answer")
        write_private_text(ctx.output_dir / "description.txt", completion.answer + "\n")
        ctx.heartbeat(1.0, "done")
        prices = provider.prices
        return {
            "description": completion.answer,
            "model": completion.model,
            "provider": provider.name,
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "latency_s": completion.latency_s,
            "cost": prices.cost(completion.prompt_tokens, completion.completion_tokens) if prices else None,
            "image": image.summary(path.name),
        }
