"""The operations we record, as data: their ``gen_ai.operation.name``, whether Google counts them
against a model's inference quota (RPM, TPM, RPD) and whether they are billed per call.

Semconv defines ``generate_content`` and ``embeddings``; the others are Gemini's own methods,
named as the SDK names them. Every HTTP attempt is counted under one of these (sdk/attempts.py
reads it from the request path), whether or not an adapter of ours opened a span for it.
"""

from __future__ import annotations

from typing import Final

GENERATE_CONTENT: Final = "generate_content"
EMBEDDINGS: Final = "embeddings"
COUNT_TOKENS: Final = "count_tokens"
COMPUTE_TOKENS: Final = "compute_tokens"
GENERATE_IMAGES: Final = "generate_images"
GENERATE_VIDEOS: Final = "generate_videos"
# Imagen's other methods (Vertex ``:predict`` like generate_images): named as the SDK names them.
EDIT_IMAGE: Final = "edit_image"
UPSCALE_IMAGE: Final = "upscale_image"
RECONTEXT_IMAGE: Final = "recontext_image"
SEGMENT_IMAGE: Final = "segment_image"
IMAGE_OPERATIONS: Final = frozenset(
    {GENERATE_IMAGES, EDIT_IMAGE, UPSCALE_IMAGE, RECONTEXT_IMAGE, SEGMENT_IMAGE}
)
GET_OPERATION: Final = "get_operation"
CACHES: Final = "caches"
FILES: Final = "files"
BATCHES: Final = "batches"
# A Live API session (semantic-conventions-genai PR #394 proposes this name for live generation).
GENERATE_LIVE_CONTENT: Final = "generate_live_content"

# The Interactions API (client.interactions): create runs the model; the others act on an
# interaction by id (a get may bring a background interaction's finished usage).
INTERACTIONS: Final = "interactions"
GET_INTERACTION: Final = "get_interaction"
CANCEL_INTERACTION: Final = "cancel_interaction"
DELETE_INTERACTION: Final = "delete_interaction"
OTHER: Final = "other"

# What counts against a model's requests and tokens per minute and requests per day.
INFERENCE: Final = frozenset(
    {GENERATE_CONTENT, EMBEDDINGS, GENERATE_VIDEOS, GENERATE_LIVE_CONTENT, INTERACTIONS}
    | IMAGE_OPERATIONS
)

# What is billed per call (caches are billed by storage time; batches at batch rates: elsewhere).
BILLED: Final = frozenset({GENERATE_CONTENT, EMBEDDINGS, GENERATE_VIDEOS} | IMAGE_OPERATIONS)

# Priced and counted as they go (a Live session: each usage message as it arrives), not once
# when the call ends: the recorder neither prices them again nor counts their usage twice.
ACCRUED: Final = frozenset({GENERATE_LIVE_CONTENT})

# Priced only when the answer carries usage: a batch job's get or list is free, except the get
# that first sees the job's results, which carries the whole job's cost at batch rates.
# Interactions likewise: an interaction is priced by the call that first sees its usage (the
# create, or a get of a background one), never twice (sdk/interactions.py).
PRICED_WITH_USAGE: Final = frozenset({BATCHES, INTERACTIONS, GET_INTERACTION})

# Request path method (``models/{model}:{method}``) -> operation.
BY_METHOD: Final = {
    "generateContent": GENERATE_CONTENT,
    "streamGenerateContent": GENERATE_CONTENT,
    "embedContent": EMBEDDINGS,
    "batchEmbedContents": EMBEDDINGS,
    "countTokens": COUNT_TOKENS,
    "computeTokens": COMPUTE_TOKENS,
    "predictLongRunning": GENERATE_VIDEOS,
    "fetchPredictOperation": GET_OPERATION,
    "batchGenerateContent": BATCHES,
    "asyncBatchEmbedContent": BATCHES,
}
# Request path collection (the first segment after the API version) -> operation.
BY_COLLECTION: Final = {
    "cachedContents": CACHES,
    "files": FILES,
    "batches": BATCHES,
    "operations": GET_OPERATION,
    "interactions": INTERACTIONS,
}

# Context caches (sdk/caches.py): spans of their own. Storage is billed by token-hour
# (record/caches.py), never per call; get and list never count against a model's quota.
CREATE_CACHE: Final = "create_cache"
UPDATE_CACHE: Final = "update_cache"
DELETE_CACHE: Final = "delete_cache"
GET_CACHE: Final = "get_cache"
LIST_CACHES: Final = "list_caches"
