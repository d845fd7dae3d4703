"""The floor: the least any GenAI-semconv instrumentation of generate_content must do.

One CLIENT span with the semconv request/response attributes, made current for the call (so HTTP
spans below it parent correctly), plus the two semconv histograms
(``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``, input and output).
No cost, no quota, no retries, no content. Written as plainly and cheaply as we know how, with
no error handling beyond what correctness needs: what is left is what the OTel SDK charges.

Runs in the benchmark worker; imports nothing from this repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from opentelemetry import context, trace

_OPERATION = "generate_content"
_PROVIDER = "gcp.gemini"
_DEFAULT_ADDRESS = ("generativelanguage.googleapis.com", 443)
# The semconv advisory buckets, as any semconv-following instrumentation sets them.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48]
_DURATION_BUCKETS += [40.96, 81.92]
_TOKEN_BUCKETS = [4**i for i in range(14)]


def install(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    from google.genai import models

    tracer = trace.get_tracer("benchmark.floor", tracer_provider=tracer_provider)
    meter = meter_provider.get_meter("benchmark.floor")
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration",
        unit="s",
        description="GenAI operation duration.",
        explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
    )
    tokens = meter.create_histogram(
        "gen_ai.client.token.usage",
        unit="{token}",
        description="Input and output tokens used.",
        explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
    )
    addresses: dict[str | None, tuple[str, int]] = {}

    def start(
        instance: Any, kwargs: dict[str, Any], operation: str = _OPERATION
    ) -> tuple[Any, dict[str, Any]]:
        base_url = instance._api_client._http_options.base_url
        address = addresses.get(base_url)
        if address is None:
            parts = urlsplit(base_url) if base_url else None
            address = addresses[base_url] = (
                (parts.hostname or "", parts.port or 443) if parts else _DEFAULT_ADDRESS
            )
        model = kwargs.get("model")
        attrs = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _PROVIDER,
            "gen_ai.request.model": model,
            "server.address": address[0],
            "server.port": address[1],
        }
        span = tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attrs)
        metric_attrs = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": _PROVIDER,
            "gen_ai.request.model": model,
            "server.address": address[0],
        }
        return span, metric_attrs

    def finish(
        span: Any, metric_attrs: dict[str, Any], t0: float, response: Any, error: Any
    ) -> None:
        if error is not None:
            error_type = str(getattr(error, "code", None) or type(error).__qualname__)
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.end()
            duration.record(time.perf_counter() - t0, {**metric_attrs, "error.type": error_type})
            return
        attrs: dict[str, Any] = {}
        usage = getattr(response, "usage_metadata", None)
        if response is not None:
            if response.model_version:
                attrs["gen_ai.response.model"] = response.model_version
                metric_attrs = {**metric_attrs, "gen_ai.response.model": response.model_version}
            if response.response_id:
                attrs["gen_ai.response.id"] = response.response_id
            if response.candidates:
                attrs["gen_ai.response.finish_reasons"] = [
                    str(c.finish_reason.value).lower()
                    for c in response.candidates
                    if c.finish_reason
                ]
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.prompt_token_count or 0
            attrs["gen_ai.usage.output_tokens"] = usage.candidates_token_count or 0
        span.set_attributes(attrs)
        span.end()
        duration.record(time.perf_counter() - t0, metric_attrs)
        if usage is not None:
            tokens.record(
                usage.prompt_token_count or 0, {**metric_attrs, "gen_ai.token.type": "input"}
            )
            tokens.record(
                usage.candidates_token_count or 0, {**metric_attrs, "gen_ai.token.type": "output"}
            )

    def sync_call(wrapped: Callable[..., Any]) -> Callable[..., Any]:
        def generate_content(self: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            span, metric_attrs = start(self, kwargs)
            token = context.attach(trace.set_span_in_context(span))
            try:
                response = wrapped(self, **kwargs)
            except BaseException as error:
                context.detach(token)
                finish(span, metric_attrs, t0, None, error)
                raise
            context.detach(token)
            finish(span, metric_attrs, t0, response, None)
            return response

        return generate_content

    def async_call(wrapped: Callable[..., Any]) -> Callable[..., Any]:
        async def generate_content(self: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            span, metric_attrs = start(self, kwargs)
            token = context.attach(trace.set_span_in_context(span))
            try:
                response = await wrapped(self, **kwargs)
            except BaseException as error:
                context.detach(token)
                finish(span, metric_attrs, t0, None, error)
                raise
            context.detach(token)
            finish(span, metric_attrs, t0, response, None)
            return response

        return generate_content

    def sync_stream(wrapped: Callable[..., Any]) -> Callable[..., Any]:
        def chunks(stream: Iterator[Any], span: Any, metric_attrs: dict[str, Any], t0: float):
            last = None
            try:
                for chunk in stream:
                    last = chunk
                    yield chunk
            except BaseException as error:
                finish(span, metric_attrs, t0, None, error)
                raise
            finish(span, metric_attrs, t0, last, None)

        def generate_content_stream(self: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            span, metric_attrs = start(self, kwargs)
            try:
                stream = wrapped(self, **kwargs)
            except BaseException as error:
                finish(span, metric_attrs, t0, None, error)
                raise
            return chunks(stream, span, metric_attrs, t0)

        return generate_content_stream

    def sync_embed(wrapped: Callable[..., Any]) -> Callable[..., Any]:
        # The least an embeddings span needs: the semconv span, duration and input tokens.
        def embed_content(self: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            span, metric_attrs = start(self, kwargs, "embeddings")
            token = context.attach(trace.set_span_in_context(span))
            try:
                response = wrapped(self, **kwargs)
            except BaseException as error:
                context.detach(token)
                span.set_status(Status(StatusCode.ERROR, str(error)))
                span.end()
                raise
            context.detach(token)
            usage = response.usage_metadata
            n = (usage.prompt_token_count or 0) if usage is not None else 0
            span.set_attribute("gen_ai.usage.input_tokens", n)
            span.end()
            duration.record(time.perf_counter() - t0, metric_attrs)
            tokens.record(n, {**metric_attrs, "gen_ai.token.type": "input"})
            return response

        return embed_content

    models.Models.embed_content = sync_embed(models.Models.embed_content)
    models.Models.generate_content = sync_call(models.Models.generate_content)
    models.AsyncModels.generate_content = async_call(models.AsyncModels.generate_content)
    models.Models.generate_content_stream = sync_stream(models.Models.generate_content_stream)
