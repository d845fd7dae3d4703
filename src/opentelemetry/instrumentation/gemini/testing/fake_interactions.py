"""Interactions API endpoints of the fake Gemini Developer API (delegated to from fake_gemini.py).

Shaped on google-genai's generated ``Interaction`` and ``InteractionSSEEvent`` types (JSON keys in
snake_case, as that API uses): ``POST /{version}/interactions`` answers an interaction
(``status``, ``model``, ``outputs``/``steps``, ``usage`` with ``total_input_tokens``...), or with
``"stream": true`` server-sent events (``interaction.created``, ``step.delta``...,
``interaction.completed`` carrying the usage), or with ``"background": true`` an interaction
``in_progress`` that a later ``GET /{version}/interactions/{id}`` finds completed (after
``polls_to_finish`` gets). ``POST .../{id}/cancel`` and ``DELETE .../{id}`` as the API has
them. Errors (429...) are scripted through FakeGemini.enqueue under the model ``interactions``
(or any model); a reply's ``usage`` (Interactions keys) sets the answer's usage, its ``extra``
fields replace the interaction's own (a hostile ``id``, ``model`` or ``status``).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

DEFAULT_USAGE: dict[str, Any] = {"total_input_tokens": 12, "total_output_tokens": 8}

Answer = tuple[int, dict[str, Any]]


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(usage if usage is not None else DEFAULT_USAGE)
    out.setdefault(
        "total_tokens",
        sum(
            out.get(k, 0)
            for k in (
                "total_input_tokens",
                "total_output_tokens",
                "total_thought_tokens",
                "total_tool_use_tokens",
            )
        ),
    )
    return out


@dataclass
class FakeInteraction:
    id: str
    model: str
    usage: dict[str, Any]
    text: str
    status: str = "completed"
    gets: int = 0
    service_tier: str | None = None
    extra: dict[str, Any] | None = None  # fields that replace the body's own

    def body(self, with_usage: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": "interaction",
            "model": self.model,
            "status": self.status,
            "created": "2026-12-01T00:00:00Z",
            "updated": "2026-12-01T00:00:01Z",
        }
        if self.service_tier:
            out["service_tier"] = self.service_tier
        if self.status == "completed":
            out["outputs"] = [{"type": "text", "text": self.text}]
            if with_usage:
                out["usage"] = self.usage
        if self.extra:
            out.update(self.extra)
        return out


class FakeInteractions:
    """The interactions of one fake server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.items: dict[str, FakeInteraction] = {}
        self.polls_to_finish = 1

    def reset(self) -> None:
        with self._lock:
            self.items.clear()
            self.polls_to_finish = 1

    @staticmethod
    def handles(path: str) -> bool:
        segments = path.strip("/").split("/")
        return len(segments) >= 2 and segments[1] == "interactions"

    def post(
        self,
        path: str,
        payload: Any,
        usage: dict[str, Any] | None,
        text: str,
        chunks: int,
        extra: dict[str, Any] | None = None,
    ) -> Answer | list[dict[str, Any]] | None:
        """create (an answer, or the events of a stream) or cancel; None for other paths."""
        segments = path.strip("/").split("/")
        if not self.handles(path):
            return None
        if len(segments) == 4 and segments[3] == "cancel":
            found = self._find(segments[2])
            if found is None:
                return 404, _not_found()
            if found.status == "in_progress":
                found.status = "cancelled"
            return 200, found.body()
        if len(segments) != 2:
            return None
        body = payload if isinstance(payload, dict) else {}
        model = str(body.get("model") or "gemini-2.5-flash")
        item = FakeInteraction(
            id=f"interaction-{next(self._ids):06d}",
            model=model,
            usage=_usage(usage),
            text=text,
            service_tier=body.get("service_tier")
            if isinstance(body.get("service_tier"), str)
            else None,
            extra=extra,
        )
        with self._lock:
            self.items[item.id] = item
        if body.get("background") is True:
            item.status = "in_progress"
            return 200, item.body()
        if body.get("stream") is True:
            return self._events(item, max(chunks, 1))
        return 200, item.body()

    def other(self, verb: str, path: str) -> Answer | None:
        """GET or DELETE an interaction; None for other paths."""
        segments = path.strip("/").split("/")
        if not self.handles(path) or len(segments) != 3:
            return None
        found = self._find(segments[2])
        if found is None:
            return 404, _not_found()
        if verb == "DELETE":
            with self._lock:
                self.items.pop(found.id, None)
            return 200, {}
        with self._lock:
            found.gets += 1
            if found.status == "in_progress" and found.gets >= self.polls_to_finish:
                found.status = "completed"
        return 200, found.body()

    def _find(self, interaction_id: str) -> FakeInteraction | None:
        with self._lock:
            return self.items.get(interaction_id)

    @staticmethod
    def _events(item: FakeInteraction, chunks: int) -> list[dict[str, Any]]:
        words = item.text.split(" ")
        per = max(len(words) // chunks, 1)
        created = {**item.body(), "status": "in_progress"}
        created.pop("outputs", None)
        created.pop("usage", None)
        events: list[dict[str, Any]] = [
            {"event_type": "interaction.created", "interaction": created, "event_id": "e0"}
        ]
        events.append(
            {
                "event_type": "step.start",
                "index": 0,
                "step": {"type": "model_output"},
                "event_id": "e1",
            }
        )
        for i in range(chunks):
            last = i == chunks - 1
            piece = " ".join(words[i * per : None if last else (i + 1) * per])
            events.append(
                {
                    "event_type": "step.delta",
                    "index": 0,
                    "delta": {"type": "text", "text": piece + ("" if last else " ")},
                    "event_id": f"d{i}",
                }
            )
        events.append({"event_type": "step.stop", "index": 0, "event_id": "e2"})
        # ``extra={"hops": n}``: n completed events, each with its own hop's usage (the API
        # continues an interaction within one stream), which add up.
        hops = (item.extra or {}).get("hops")
        hops = hops if isinstance(hops, int) else 1
        body = {k: v for k, v in item.body().items() if k != "hops"}
        events.extend(
            {"event_type": "interaction.completed", "interaction": body, "event_id": f"e3-{i}"}
            for i in range(max(1, min(hops, 1000)))
        )
        return events


def _not_found() -> dict[str, Any]:
    return {"error": {"code": 404, "message": "interaction not found", "status": "NOT_FOUND"}}
