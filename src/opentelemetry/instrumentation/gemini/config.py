"""Configuration, read once at instrument time into an immutable object.

Explicit ``instrument(**kwargs)`` values beat environment variables; nothing here writes to
``os.environ``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .bounds import MAX_NAME, encodable, has_secret
from .bounds import shown as _shown

_logger = logging.getLogger(__name__)

ENV_TIER: Final = "OTEL_INSTRUMENTATION_GEMINI_TIER"
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_PRICES_FILE: Final = "OTEL_INSTRUMENTATION_GEMINI_PRICES_FILE"
ENV_LIMITS_FILE: Final = "OTEL_INSTRUMENTATION_GEMINI_LIMITS_FILE"
ENV_MAX_MODELS: Final = "OTEL_INSTRUMENTATION_GEMINI_MAX_MODELS"
ENV_PROJECT: Final = "OTEL_INSTRUMENTATION_GEMINI_PROJECT"
ENV_DAILY_BUDGET: Final = "OTEL_INSTRUMENTATION_GEMINI_DAILY_BUDGET_USD"
ENV_MONTHLY_BUDGET: Final = "OTEL_INSTRUMENTATION_GEMINI_MONTHLY_BUDGET_USD"
ENV_RETRY_POLICY: Final = "OTEL_INSTRUMENTATION_GEMINI_RETRY_POLICY"
ENV_RETRY_MAX_WAIT: Final = "OTEL_INSTRUMENTATION_GEMINI_RETRY_MAX_WAIT"
# "sdk": the SDK retries on its own schedule (we change nothing). "respect_retry_info": before
# the SDK's next attempt after a 429, wait what the server asked for; stop on a per-day quota.
RETRY_POLICIES: Final = ("sdk", "respect_retry_info")
DEFAULT_RETRY_POLICY: Final = "sdk"
# The longest wait the policy adds before one attempt unless the user says otherwise: a
# server asking for more than this is not waited for (the SDK's own schedule applies).
DEFAULT_RETRY_MAX_WAIT: Final = 60.0
# Distinct model names a process records metrics under; later ones count as "other".
DEFAULT_MAX_MODELS: Final = 256

TIERS: Final = ("free", "tier_1", "tier_2", "tier_3")
UNKNOWN_TIER: Final = "unknown"

# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT's modes, as the contrib GenAI
# instrumentations spell them: (content on spans, content in events). The boolean forms keep
# their old meaning: true is SPAN_ONLY, false NO_CONTENT.
CAPTURE_MODES: Final = {
    "NO_CONTENT": (False, False),
    "SPAN_ONLY": (True, False),
    "EVENT_ONLY": (False, True),
    "SPAN_AND_EVENT": (True, True),
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
# Accept the spellings people actually type for a tier.
_TIER_ALIASES: Final = {
    "free": "free",
    "free_tier": "free",
    "tier1": "tier_1",
    "tier_1": "tier_1",
    "tier-1": "tier_1",
    "1": "tier_1",
    "paid": "tier_1",
    "tier2": "tier_2",
    "tier_2": "tier_2",
    "tier-2": "tier_2",
    "2": "tier_2",
    "tier3": "tier_3",
    "tier_3": "tier_3",
    "tier-3": "tier_3",
    "3": "tier_3",
    "unknown": UNKNOWN_TIER,
    "": UNKNOWN_TIER,
}


def normalize_tier(value: object, *, origin: str) -> str:
    """Map a user-given tier to one of TIERS or "unknown"; warn (never raise) on junk."""
    if value is None:
        return UNKNOWN_TIER
    tier = _TIER_ALIASES.get(str(value).strip().lower())
    if tier is None:
        _logger.warning(
            "Ignoring unknown Gemini tier %s from %s; expected one of %s. Using %r.",
            _shown(value),
            origin,
            ", ".join(TIERS),
            UNKNOWN_TIER,
        )
        return UNKNOWN_TIER
    return tier


def _parse_bool(value: object, *, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text not in _FALSE:
        _logger.warning("Ignoring %s=%s: expected true or false.", origin, _shown(value))
    return False


def parse_capture(value: object, *, origin: str) -> tuple[bool, bool]:
    """(content on spans, content in events) from a mode name or a boolean; junk: neither,
    with a warning."""
    if value is None:
        return False, False
    if isinstance(value, bool):
        return value, False
    mode = CAPTURE_MODES.get(str(value).strip().upper())
    if mode is not None:
        return mode
    text = str(value).strip().lower()
    if text in _TRUE:
        return True, False
    if text not in _FALSE:
        _logger.warning(
            "Ignoring %s=%s: expected one of %s, or true or false.",
            origin,
            _shown(value),
            ", ".join(CAPTURE_MODES),
        )
    return False, False


def _parse_cap(value: object, *, origin: str) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_MODELS
    try:
        cap = int(str(value).strip())
    except ValueError:
        cap = 0
    if cap < 1:
        _logger.warning(
            "Ignoring %s=%s: expected a positive integer. Using %d.",
            origin,
            _shown(value),
            DEFAULT_MAX_MODELS,
        )
        return DEFAULT_MAX_MODELS
    return cap


def _parse_usd(value: object, *, origin: str) -> float | None:
    """A budget in USD: a finite number >= 0, else None (warned)."""
    if value is None or value == "":
        return None
    try:
        amount = float(str(value).strip())
    except ValueError:
        amount = -1.0
    if not (0 <= amount < float("inf")):
        _logger.warning("Ignoring %s=%s: expected an amount in USD >= 0.", origin, _shown(value))
        return None
    return amount + 0.0  # "-0" as 0.0: the budget gauge never reads -0


def _parse_project(value: object, *, origin: str) -> str | None:
    """gcp.gemini.project as configured: capped, and as OTLP can carry it (an environment
    variable read with surrogateescape can hold lone surrogates, and one in a label fails the
    whole export). A value holding an API key (pasted into the wrong variable) is not a project:
    it would go on every span and series."""
    if not value:
        return None
    project = encodable(str(value).strip()[:MAX_NAME])
    if has_secret(project):
        _logger.warning(
            "Ignoring %s=%s: it holds an API key or access token, not a project.",
            origin,
            _shown(value),
        )
        return None
    return project or None


def _parse_retry_policy(value: object, *, origin: str) -> str:
    if value is None or value == "":
        return DEFAULT_RETRY_POLICY
    policy = str(value).strip().lower()
    if policy not in RETRY_POLICIES:
        _logger.warning(
            "Ignoring %s=%s: expected one of %s. Using %r.",
            origin,
            _shown(value),
            ", ".join(RETRY_POLICIES),
            DEFAULT_RETRY_POLICY,
        )
        return DEFAULT_RETRY_POLICY
    return policy


def _parse_seconds(value: object, *, origin: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if not (0 <= seconds < float("inf")):
        _logger.warning(
            "Ignoring %s=%s: expected seconds >= 0. Using %s.", origin, _shown(value), default
        )
        return default
    return seconds


@dataclass(frozen=True, slots=True)
class Settings:
    tier: str = UNKNOWN_TIER
    capture_content: bool = False
    prices_file: str | None = None
    limits_file: str | None = None
    limits: Mapping[str, Mapping[str, Mapping[str, int | None]]] | None = None
    max_models: int = DEFAULT_MAX_MODELS
    project: str | None = None  # gcp.gemini.project on the Developer API (Vertex: the client's)
    daily_budget_usd: float | None = None  # exported as a gauge: the backend compares spend
    monthly_budget_usd: float | None = None
    retry_policy: str = DEFAULT_RETRY_POLICY
    retry_max_wait: float = DEFAULT_RETRY_MAX_WAIT
    content_on_span: bool = False  # gen_ai.input/output.messages... as span attributes
    content_in_event: bool = False  # the gen_ai.client.inference.operation.details event
    # A user's ContentUploader (record/upload.py): content goes to it, references to telemetry.
    content_uploader: Any = None

    @classmethod
    def resolve(cls, environ: Mapping[str, str], kwargs: Mapping[str, Any]) -> Settings:
        """Build settings from env vars, with explicit keyword arguments taking precedence."""

        def pick(key: str, env: str) -> tuple[object, str]:
            if kwargs.get(key) is not None:
                return kwargs[key], f"instrument({key}=...)"
            return environ.get(env), env

        tier, tier_origin = pick("tier", ENV_TIER)
        capture, capture_origin = pick("capture_content", ENV_CAPTURE_CONTENT)
        prices_file, _ = pick("prices_file", ENV_PRICES_FILE)
        limits_file, _ = pick("limits_file", ENV_LIMITS_FILE)
        max_models, max_models_origin = pick("max_models", ENV_MAX_MODELS)
        project, project_origin = pick("project", ENV_PROJECT)
        daily, daily_origin = pick("daily_budget_usd", ENV_DAILY_BUDGET)
        monthly, monthly_origin = pick("monthly_budget_usd", ENV_MONTHLY_BUDGET)
        policy, policy_origin = pick("retry_policy", ENV_RETRY_POLICY)
        max_wait, max_wait_origin = pick("retry_max_wait", ENV_RETRY_MAX_WAIT)
        on_span, in_event = parse_capture(capture, origin=capture_origin)
        uploader = kwargs.get("content_uploader")
        if uploader is not None and not (on_span or in_event):
            on_span = True  # an uploader is asked for content: its references go on spans
        return cls(
            tier=normalize_tier(tier, origin=tier_origin),
            capture_content=on_span or in_event,
            prices_file=str(prices_file) if prices_file else None,
            limits_file=str(limits_file) if limits_file else None,
            limits=kwargs.get("limits"),
            max_models=_parse_cap(max_models, origin=max_models_origin),
            project=_parse_project(project, origin=project_origin),
            daily_budget_usd=_parse_usd(daily, origin=daily_origin),
            monthly_budget_usd=_parse_usd(monthly, origin=monthly_origin),
            retry_policy=_parse_retry_policy(policy, origin=policy_origin),
            retry_max_wait=_parse_seconds(
                max_wait, origin=max_wait_origin, default=DEFAULT_RETRY_MAX_WAIT
            ),
            content_on_span=on_span,
            content_in_event=in_event,
            content_uploader=uploader,
        )
