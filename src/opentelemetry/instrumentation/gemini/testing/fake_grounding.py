"""Grounding on the fake server's generate replies: ``Reply(candidate_fields={"groundingMetadata":
grounding_metadata(...)})`` puts it on the answer's candidate (a stream's last chunk), as Google
Search, Maps or URL context grounding send it."""

from __future__ import annotations

from typing import Any


def grounding_metadata(
    queries: tuple[str, ...] = ("weather in Paris",),
    web: tuple[tuple[str, str], ...] = (("https://example.com/a", "Example A"),),
    maps: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """A candidate's ``groundingMetadata`` as Google Search (``web``) or Maps grounding sends
    it: the queries the model ran and the chunks it cites."""
    chunks: list[dict[str, Any]] = [{"web": {"uri": uri, "title": title}} for uri, title in web]
    chunks += [{"maps": {"uri": uri, "title": title}} for uri, title in maps]
    meta: dict[str, Any] = {"groundingChunks": chunks}
    if queries:
        meta["webSearchQueries"] = list(queries)
        meta["searchEntryPoint"] = {"renderedContent": "<div>search</div>"}
    if chunks:
        meta["groundingSupports"] = [
            {
                "segment": {"startIndex": 0, "endIndex": 5, "text": "Hello"},
                "groundingChunkIndices": list(range(len(chunks))),
            }
        ]
    return meta


def url_context_metadata(*urls: str) -> dict[str, Any]:
    """A candidate's ``urlContextMetadata``: one entry per URL the URL context tool read."""
    return {
        "urlMetadata": [
            {"retrievedUrl": url, "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"}
            for url in urls
        ]
    }
