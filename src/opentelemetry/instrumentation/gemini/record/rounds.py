"""Automatic function calling's rounds, made visible: one ``gcp.gemini.round`` event per
billed request on the generate_content span, at the time that request answered, with its own
usage and cost, so a trace shows which round cost what (the span carries their sum).

Only calls the SDK's round hooks saw (calls with tools) have rounds; a call with tools the
model answered at once has one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .. import attributes as A
from .usage import usage_from_metadata

if TYPE_CHECKING:
    from .call import Call
    from .recorder import Recorder

_logger = logging.getLogger(__name__)
MAX_ROUNDS = 128  # events per span; the SDK's default is 10 remote calls


def add_events(
    recorder: Recorder,
    call: Call,
    response_model: str | None,
    served: str | None,
    error: BaseException | None,
) -> None:
    """One event per round; cost as the span's: priced by the model that answered, at its
    tier, and only when the call succeeded (a failed call is costed at 0). Never raises."""
    try:
        prices = recorder.prices if error is None else None
        model = response_model or call.model
        for number, (meta, at) in enumerate(
            zip(call.request_usages, call.round_ends, strict=False), 1
        ):
            if number > MAX_ROUNDS:
                break
            attrs: dict[str, Any] = {A.GEMINI_ROUND_NUMBER: number}
            usage = usage_from_metadata(meta)
            if usage is not None:
                attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
                attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
                if usage.cached_tokens:
                    attrs[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_tokens
                if usage.thoughts_tokens:
                    attrs[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.thoughts_tokens
                if prices is not None:
                    traffic = usage.traffic_type or served or call.requested_tier
                    cost = prices.cost(model, usage, tier=recorder.tier, traffic_type=traffic)
                    if cost is not None:
                        attrs[A.GEN_AI_USAGE_COST_AMOUNT] = cost.total
                        attrs[A.GEN_AI_USAGE_COST_CURRENCY] = "USD"
            call.span.add_event(A.EVENT_ROUND, attrs, at)
    except Exception:
        _logger.debug("gemini instrumentation: could not record rounds", exc_info=True)
