"""Every attribute, event and metric name we emit, in one place.

The ``gen_ai.*`` names follow the OpenTelemetry GenAI semantic conventions. They are spelled out
here rather than imported from ``opentelemetry.semconv._incubating`` because that module is
deprecated (the conventions moved to their own repository) and its contents change between
releases; a string constant cannot disappear under a user's upgrade. Gemini-specific names live
under ``gcp.gemini.*``. README's reference section documents each one.
"""

from __future__ import annotations

from typing import Final

# --- GenAI semantic conventions: span attributes -------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

# Proposed GenAI cost convention.
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"

# Semconv enum values.
OPERATION_GENERATE_CONTENT: Final = "generate_content"
PROVIDER_GEMINI: Final = "gcp.gemini"
PROVIDER_VERTEX_AI: Final = "gcp.vertex_ai"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

# --- Gemini-specific span attributes -------------------------------------------------------
GEMINI_TIER: Final = "gcp.gemini.tier"
GEMINI_TIER_SOURCE: Final = "gcp.gemini.tier.source"
GEMINI_PROJECT: Final = "gcp.gemini.project"  # the Google Cloud project quota and bills count in
GEMINI_PROJECT_SOURCE: Final = "gcp.gemini.project.source"  # config, client, error_info
GEMINI_SERVICE_TIER: Final = "gcp.gemini.service_tier"  # the tier that served the call
GEMINI_EMBEDDINGS_COUNT: Final = "gcp.gemini.embeddings.count"  # embeddings returned (inputs)
GEMINI_BILLABLE_CHARACTERS: Final = "gcp.gemini.usage.billable_characters"  # Vertex embeddings
GEMINI_COUNTED_TOKENS: Final = "gcp.gemini.counted_tokens"  # count_tokens/compute_tokens' answer
GEMINI_COUNTED_CACHED_TOKENS: Final = "gcp.gemini.counted_tokens.cached"
GEMINI_TRAFFIC_TYPE: Final = "gcp.gemini.traffic_type"
GEMINI_REQUEST_SERVICE_TIER: Final = "gcp.gemini.request.service_tier"
GEMINI_USAGE_TOOL_USE_PROMPT_TOKENS: Final = "gcp.gemini.usage.tool_use_prompt_tokens"
GEMINI_USAGE_THOUGHTS_TOKENS: Final = "gcp.gemini.usage.thoughts_tokens"
GEMINI_USAGE_TOTAL_TOKENS: Final = "gcp.gemini.usage.total_tokens"
# Per-modality counts: f"{GEMINI_USAGE_INPUT_MODALITY_PREFIX}{modality}" e.g. ...input_tokens.audio
GEMINI_USAGE_INPUT_MODALITY_PREFIX: Final = "gcp.gemini.usage.input_tokens."
GEMINI_USAGE_CACHED_MODALITY_PREFIX: Final = "gcp.gemini.usage.cache_read.input_tokens."
GEMINI_USAGE_OUTPUT_MODALITY_PREFIX: Final = "gcp.gemini.usage.output_tokens."
GEMINI_STREAM_CHUNKS: Final = "gcp.gemini.stream.chunks"
GEMINI_STREAM_END: Final = "gcp.gemini.stream.end"
GEMINI_ATTEMPTS: Final = "gcp.gemini.attempts"
GEMINI_RETRY_DELAY: Final = "gcp.gemini.retry_delay"

GEMINI_COST_LIST_AMOUNT: Final = "gcp.gemini.cost.list_amount"
GEMINI_COST_PRICES_VERSION: Final = "gcp.gemini.cost.prices_version"
GEMINI_COST_UNPRICED_REASON: Final = "gcp.gemini.cost.unpriced_reason"
GEMINI_COST_COMPONENT: Final = "gcp.gemini.cost.component"
# Values of gcp.gemini.cost.unpriced_reason.
UNPRICED_UNKNOWN_MODEL: Final = "unknown_model"
UNPRICED_NO_USAGE: Final = "no_usage"
UNPRICED_PRICES_LOADING: Final = "prices_loading"  # genai-prices not loaded within the budget

GEMINI_QUOTA_ID: Final = "gcp.gemini.quota.id"
GEMINI_QUOTA_METRIC: Final = "gcp.gemini.quota.metric"
GEMINI_QUOTA_LIMIT: Final = "gcp.gemini.quota.limit"
GEMINI_QUOTA_WINDOW: Final = "gcp.gemini.quota.window"
GEMINI_QUOTA_DIMENSION: Final = "gcp.gemini.quota.dimension"
GEMINI_QUOTA_MODEL: Final = "gcp.gemini.quota.model"
GEMINI_QUOTA_LOCATION: Final = "gcp.gemini.quota.location"
GEMINI_ATTEMPT_NUMBER: Final = "gcp.gemini.attempt.number"

# Event names.
EVENT_QUOTA_EXCEEDED: Final = "gcp.gemini.quota.exceeded"
EVENT_ATTEMPT: Final = "gcp.gemini.attempt"
# The semconv exception event, written by hand for errors the server answered (see telemetry).
EVENT_EXCEPTION: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_ESCAPED: Final = "exception.escaped"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"

# Values.
TIER_UNKNOWN: Final = "unknown"
STREAM_END_EXHAUSTED: Final = "exhausted"
STREAM_END_CLOSED: Final = "closed"
STREAM_END_ABANDONED: Final = "abandoned"
STREAM_END_ERROR: Final = "error"
ERROR_TYPE_ABANDONED: Final = "abandoned_stream"

# --- Metrics -------------------------------------------------------------------------------
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_REQUESTS: Final = "gcp.gemini.requests"
METRIC_TOKENS: Final = "gcp.gemini.tokens"
METRIC_COST: Final = "gcp.gemini.cost"
# Pay-as-you-go equivalent of every priced call, billed or not (free tier, provisioned
# throughput): a second counter, so sum(gcp.gemini.cost) stays the bill.
METRIC_COST_LIST: Final = "gcp.gemini.cost.list"
METRIC_UNPRICED_CALLS: Final = "gcp.gemini.cost.unpriced_calls"
METRIC_QUOTA_EXCEEDED: Final = "gcp.gemini.quota.exceeded"
METRIC_QUOTA_LIMIT: Final = "gcp.gemini.quota.limit"
METRIC_QUOTA_USAGE: Final = "gcp.gemini.quota.usage"
METRIC_QUOTA_UTILIZATION: Final = "gcp.gemini.quota.utilization"
METRIC_RETRY_DELAY: Final = "gcp.gemini.retry_delay"

# Low-cardinality metric attribute keys of our own.
GEMINI_TOKEN_TYPE: Final = "gcp.gemini.token.type"
GEMINI_REQUEST_OUTCOME: Final = "gcp.gemini.request.outcome"

# Values of gcp.gemini.token.type on the gcp.gemini.tokens counter.
TOKEN_KIND_INPUT: Final = "input"
TOKEN_KIND_CACHED_INPUT: Final = "cached_input"
TOKEN_KIND_OUTPUT: Final = "output"
TOKEN_KIND_REASONING: Final = "reasoning"
TOKEN_KIND_TOOL_USE_INPUT: Final = "tool_use_input"

# Bucket boundaries advised by the GenAI metric conventions.
DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)

# --- Traces people can read: tool executions, rounds, content events, uploaded content ------
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"  # opt-in content
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"  # opt-in content
TOOL_TYPE_FUNCTION: Final = "function"
# One event per billed request of automatic function calling, on the generate_content span.
EVENT_ROUND: Final = "gcp.gemini.round"
GEMINI_ROUND_NUMBER: Final = "gcp.gemini.round.number"  # 1-based, in the order sent
# The semconv event carrying a call's messages (logs API), when content goes to events.
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
# Where an uploader put the content (content_uploader=): instead of the content itself.
GEN_AI_INPUT_MESSAGES_REF: Final = "gen_ai.input.messages_ref"
GEN_AI_OUTPUT_MESSAGES_REF: Final = "gen_ai.output.messages_ref"
GEN_AI_SYSTEM_INSTRUCTIONS_REF: Final = "gen_ai.system_instructions_ref"
GEMINI_CONTENT_UPLOAD: Final = "gcp.gemini.content.upload"  # queued, dropped, error
