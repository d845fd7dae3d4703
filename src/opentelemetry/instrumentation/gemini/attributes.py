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
GEMINI_SERVICE_TIER: Final = "gcp.gemini.service_tier"  # the tier that served the call
GEMINI_EMBEDDINGS_COUNT: Final = "gcp.gemini.embeddings.count"  # embeddings returned (inputs)
GEMINI_BILLABLE_CHARACTERS: Final = "gcp.gemini.usage.billable_characters"  # Vertex embeddings
GEMINI_COUNTED_TOKENS: Final = "gcp.gemini.counted_tokens"  # count_tokens/compute_tokens' answer
GEMINI_COUNTED_CACHED_TOKENS: Final = "gcp.gemini.counted_tokens.cached"
# Images (Imagen) and video (Veo): what was asked for and what came back.
GEMINI_IMAGES_REQUESTED: Final = "gcp.gemini.images.requested"  # number_of_images asked for
GEMINI_IMAGES_RETURNED: Final = "gcp.gemini.images.returned"  # images (segment: masks) returned
GEMINI_IMAGES_FILTERED: Final = "gcp.gemini.images.filtered"  # removed by the RAI filter
GEMINI_IMAGE_SIZE: Final = "gcp.gemini.image.size"  # image_size asked for (1K, 2K)
GEMINI_IMAGE_ASPECT_RATIO: Final = "gcp.gemini.image.aspect_ratio"
GEMINI_IMAGE_UPSCALE_FACTOR: Final = "gcp.gemini.image.upscale_factor"
GEMINI_VIDEOS_REQUESTED: Final = "gcp.gemini.videos.requested"  # number_of_videos asked for
GEMINI_VIDEOS_RETURNED: Final = "gcp.gemini.videos.returned"
GEMINI_VIDEOS_FILTERED: Final = "gcp.gemini.videos.filtered"  # raiMediaFilteredCount
GEMINI_VIDEO_DURATION: Final = "gcp.gemini.video.duration_seconds"  # asked for, per video
GEMINI_VIDEO_RESOLUTION: Final = "gcp.gemini.video.resolution"
GEMINI_VIDEO_ASPECT_RATIO: Final = "gcp.gemini.video.aspect_ratio"
GEMINI_VIDEO_GENERATE_AUDIO: Final = "gcp.gemini.video.generate_audio"
GEMINI_USAGE_VIDEO_SECONDS: Final = "gcp.gemini.usage.video_seconds"  # billed: seconds x videos
GEMINI_OPERATION_NAME: Final = "gcp.gemini.operation.name"  # a long-running operation's name
GEMINI_OPERATION_DONE: Final = "gcp.gemini.operation.done"
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
# How the priced tokens were processed: online (a call answered at once) or batch (a Batch API
# job's results, at batch rates). On the spend counters, so dashboards show the two apart.
GEMINI_COST_PROCESSING: Final = "gcp.gemini.cost.processing"
PROCESSING_ONLINE: Final = "online"
PROCESSING_BATCH: Final = "batch"
# Values of gcp.gemini.cost.unpriced_reason.
UNPRICED_UNKNOWN_MODEL: Final = "unknown_model"
UNPRICED_NO_USAGE: Final = "no_usage"
UNPRICED_PRICES_LOADING: Final = "prices_loading"  # genai-prices not loaded within the budget
UNPRICED_PENDING: Final = "pending_operation"  # a video submit: priced when first seen done
UNPRICED_NO_VERIFIED_PRICE: Final = "no_verified_price"  # listed in unit_prices.json as such
UNPRICED_UNKNOWN_DURATION: Final = "unknown_duration"  # a video whose duration was never seen

GEMINI_QUOTA_ID: Final = "gcp.gemini.quota.id"
GEMINI_QUOTA_METRIC: Final = "gcp.gemini.quota.metric"
GEMINI_QUOTA_LIMIT: Final = "gcp.gemini.quota.limit"
GEMINI_QUOTA_WINDOW: Final = "gcp.gemini.quota.window"
GEMINI_QUOTA_DIMENSION: Final = "gcp.gemini.quota.dimension"
GEMINI_QUOTA_MODEL: Final = "gcp.gemini.quota.model"
GEMINI_QUOTA_LOCATION: Final = "gcp.gemini.quota.location"
GEMINI_ATTEMPT_NUMBER: Final = "gcp.gemini.attempt.number"

# Batch API jobs (client.batches): one span per SDK call.
GEMINI_BATCH_METHOD: Final = "gcp.gemini.batch.method"  # create, create_embeddings, get, ...
GEMINI_BATCH_JOB_NAME: Final = "gcp.gemini.batch.job.name"  # batches/{id}
GEMINI_BATCH_JOB_STATE: Final = "gcp.gemini.batch.job.state"  # JOB_STATE_SUCCEEDED, ...
GEMINI_BATCH_REQUEST_COUNT: Final = "gcp.gemini.batch.request_count"  # inline requests sent
GEMINI_BATCH_SOURCE_FILE: Final = "gcp.gemini.batch.source.file"  # files/..., gs://..., bq://...
GEMINI_BATCH_RESULTS_FILE: Final = "gcp.gemini.batch.results.file"  # where results went
GEMINI_BATCH_ENQUEUED_TOKENS: Final = "gcp.gemini.batch.enqueued_tokens"  # estimate, at create
GEMINI_BATCH_RESPONSES: Final = "gcp.gemini.batch.responses"  # results priced on this span
GEMINI_BATCH_FAILED_RESPONSES: Final = "gcp.gemini.batch.failed_responses"
# True on the span that priced a job's results; False on a later sight of the same job.
GEMINI_BATCH_RESULTS_PRICED: Final = "gcp.gemini.batch.results.priced"
GEMINI_BATCH_JOB_COUNT: Final = "gcp.gemini.batch.job_count"  # list: jobs on the first page
# Interactions API (client.interactions): one span per SDK call.
GEMINI_INTERACTION_METHOD: Final = "gcp.gemini.interaction.method"  # create, get, cancel, delete
GEMINI_INTERACTION_STATUS: Final = "gcp.gemini.interaction.status"  # completed, in_progress...
GEMINI_INTERACTION_BACKGROUND: Final = "gcp.gemini.interaction.background"  # background=True
# False when an earlier call in this process already recorded this interaction's usage.
GEMINI_INTERACTION_PRICED: Final = "gcp.gemini.interaction.priced"
# The quota dimension of the enqueued-tokens gauges (gcp.gemini.quota.*).
QUOTA_DIMENSION_BATCH_ENQUEUED: Final = "batch_enqueued_tokens"

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

# --- Context caches (sdk/caches.py, record/caches.py) ----------------------------------------
GEMINI_CACHE_NAME: Final = "gcp.gemini.cache.name"  # cachedContents/{id} (Vertex: full path)
GEMINI_CACHE_TOKENS: Final = "gcp.gemini.cache.tokens"  # usage_metadata.total_token_count
GEMINI_CACHE_EXPIRE_TIME: Final = "gcp.gemini.cache.expire_time"  # RFC 3339, as answered
GEMINI_CACHE_TTL: Final = "gcp.gemini.cache.ttl"  # seconds from the answer to its expiry
GEMINI_CACHE_STORAGE_RATE: Final = "gcp.gemini.cache.storage_usd_per_hour"  # list, this cache
GEMINI_CACHE_STORAGE_AMOUNT: Final = "gcp.gemini.cache.storage_amount"  # billed USD banked
GEMINI_CACHE_LISTED: Final = "gcp.gemini.cache.listed"  # caches on a list page
METRIC_CACHE_TOKENS: Final = "gcp.gemini.cache.tokens"  # gauge: live cached tokens per model
METRIC_CACHE_STORAGE_RATE: Final = "gcp.gemini.cache.storage_rate"  # gauge: USD per hour
COST_COMPONENT_CACHE_STORAGE: Final = "cache_storage"
UNPRICED_NO_STORAGE_PRICE: Final = "no_storage_price"
GEMINI_CACHE_UNPRICED_REASON: Final = "gcp.gemini.cache.storage_unpriced_reason"

# --- Grounding (record/grounding.py) -----------------------------------------------------------
GEMINI_GROUNDING_SEARCH_QUERIES: Final = "gcp.gemini.grounding.search_queries"
GEMINI_GROUNDING_CHUNKS: Final = "gcp.gemini.grounding.chunks"
GEMINI_GROUNDING_SOURCES: Final = "gcp.gemini.grounding.sources"  # google_search, google_maps...
GEMINI_GROUNDING_URLS: Final = "gcp.gemini.grounding.urls"  # url_context_metadata entries
GEMINI_GROUNDING_CODE_EXECUTIONS: Final = "gcp.gemini.grounding.code_executions"
GEMINI_GROUNDING_UNIT: Final = "gcp.gemini.grounding.unit"  # grounded_prompt, search_query...
GEMINI_GROUNDING_BILLABLE: Final = "gcp.gemini.grounding.billable_units"  # priced units
GEMINI_GROUNDING_SOURCE: Final = "gcp.gemini.grounding.source"  # metric attribute
GEMINI_COST_GROUNDING_AMOUNT: Final = "gcp.gemini.cost.grounding.amount"  # in-process billed
GEMINI_COST_GROUNDING_LIST_AMOUNT: Final = "gcp.gemini.cost.grounding.list_amount"
GEMINI_GROUNDING_UNPRICED_REASON: Final = "gcp.gemini.grounding.unpriced_reason"
METRIC_GROUNDING: Final = "gcp.gemini.grounding"
COST_COMPONENT_GROUNDING: Final = "grounding"
GROUNDING_GOOGLE_SEARCH: Final = "google_search"
GROUNDING_GOOGLE_MAPS: Final = "google_maps"
GROUNDING_URL_CONTEXT: Final = "url_context"
GROUNDING_CODE_EXECUTION: Final = "code_execution"
GROUNDING_RETRIEVAL: Final = "retrieval"  # Vertex AI Search / RAG chunks

# Budgets and the Pacific day, as gauges (record/budgets.py; issue 18).
METRIC_BUDGET: Final = "gcp.gemini.budget"  # the configured budget in USD, per period
METRIC_SPEND: Final = "gcp.gemini.spend"  # this process's billed USD in the current period
METRIC_QUOTA_DAY_REMAINING: Final = "gcp.gemini.quota.day_remaining"  # s to Pacific midnight
METRIC_QUOTA_DAY_ELAPSED: Final = "gcp.gemini.quota.day_elapsed"  # s since Pacific midnight
GEMINI_BUDGET_PERIOD: Final = "gcp.gemini.budget.period"  # "day" or "month", Pacific calendar

# The opt-in retry policy (sdk/retry_policy.py): what it did before the SDK's next attempt.
GEMINI_RETRY_POLICY: Final = "gcp.gemini.retry.policy"  # "respect_retry_info"
GEMINI_RETRY_POLICY_ACTION: Final = "gcp.gemini.retry.policy.action"  # waited | gave_up | none
GEMINI_RETRY_POLICY_WAITED: Final = "gcp.gemini.retry.policy.waited"  # seconds waited, summed
GEMINI_RETRY_POLICY_WAITS: Final = "gcp.gemini.retry.policy.waits"  # waits before attempts

# --- Live API sessions (client.aio.live.connect): one span per session ----------------------
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"  # a session id the server gave
GEMINI_LIVE_TURNS: Final = "gcp.gemini.live.turns"  # model turns completed (turnComplete)
GEMINI_LIVE_MESSAGES: Final = "gcp.gemini.live.messages"  # server messages the app received
GEMINI_LIVE_USAGE_MESSAGES: Final = "gcp.gemini.live.usage_messages"  # of which with usage
GEMINI_LIVE_TOOL_CALLS: Final = "gcp.gemini.live.tool_calls"  # function calls the server asked for
GEMINI_LIVE_INTERRUPTIONS: Final = "gcp.gemini.live.interruptions"  # turns cut by the client
GEMINI_LIVE_CLOSE_CODE: Final = "gcp.gemini.live.close_code"  # the websocket close code
GEMINI_LIVE_END: Final = "gcp.gemini.live.end"  # how the session ended (LIVE_END_*)
GEMINI_LIVE_GO_AWAY_TIME_LEFT: Final = "gcp.gemini.live.go_away.time_left"  # seconds, as sent
EVENT_LIVE_GO_AWAY: Final = "gcp.gemini.live.go_away"
# Values of gcp.gemini.live.end.
LIVE_END_CLOSED: Final = "closed"  # the app left the session normally
LIVE_END_SERVER_CLOSED: Final = "server_closed"  # the server closed the connection
LIVE_END_GO_AWAY: Final = "go_away"  # ... after announcing it with goAway
LIVE_END_ERROR: Final = "error"  # connect failed, or an exception left the session
LIVE_END_CANCELLED: Final = "cancelled"  # the task running the session was cancelled
LIVE_END_ABANDONED: Final = "abandoned"  # dropped without being closed (garbage-collected)
# gcp.gemini.quota.{limit,usage,utilization} dimension: concurrent Live sessions.
QUOTA_DIMENSION_LIVE_SESSIONS: Final = "live_sessions"

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
