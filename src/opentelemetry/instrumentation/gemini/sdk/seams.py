"""What we hook in google-genai, and how: ``Patches`` puts each adapter's hook in the SDK
method's place and puts the original back. The adapters live beside this, one module per SDK
surface (models.py: generate_content, embed_content, count/compute tokens; attempts.py: every
HTTP attempt, below the SDK's retry loop).

Each hook is a plain function put in the method's place (its ``__wrapped__`` is the original,
which ``Patches.unpatch`` puts back): a wrapt ``FunctionWrapper`` on a method builds a bound
wrapper object on every call: ~10-15k instructions for each of the two hooks every call passes
(benchmarks/README).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..record.recorder import Recorder
from ..record.request import has_tools
from .attempts import ATTEMPT_TARGETS
from .batches import BATCH_TARGETS
from .caches import CACHE_TARGETS
from .interactions import hook_when_used
from .live import LIVE_TARGETS
from .media import MEDIA_TARGETS
from .models import CALL_TARGETS, REQUEST_TARGETS
from .tools import TOOL_TARGETS

_logger = logging.getLogger(__name__)

Method = Callable[..., Any]  # called as the SDK calls it: (self, *args, **kwargs)
# (module, "Class.method", hook factory(patches, original)); "A|B": the first of A, B the SDK has;
# a name without a dot is a module-level function (called without self).
Targets = tuple[tuple[str, str, Callable[["Patches", Method], Method]], ...]


def sdk_version() -> str:
    try:
        return version("google-genai")
    except PackageNotFoundError:
        return "unknown"


def _resolve(module_name: str, dotted: str) -> tuple[Any, str] | None:
    """(owning class, method name) for the first of ``dotted``'s alternatives the SDK has, or
    None."""
    try:
        module: Any = import_module(module_name)
    except ImportError:
        return None
    for alternative in dotted.split("|"):
        if "." not in alternative:  # a module-level function: the module owns it
            if callable(getattr(module, alternative, None)):
                return module, alternative
            continue
        cls_name, method = alternative.split(".")
        owner = getattr(module, cls_name, None)
        found = getattr(owner, method, None) if owner is not None else None
        if callable(found) or isinstance(found, property):  # a property: hooked by its getter
            return owner, method
    return None


_ABSENT = object()  # the class inherited the method: unpatching deletes our hook


class Patches:
    """What this instrumentation hooked in the SDK: the call and attempt hooks from
    ``instrument()``, the request hooks from the first call that carries tools."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.request_hooks = False  # read without the lock on every call: set once, never reset
        self.closed = False  # set by unpatch: a hook still reachable then passes calls through
        # The SDK client of the latest call, with what calls read of it (see models._client).
        self.last_client: tuple[Any, bool, str | None, str | None] | None = None
        # (owner, method, what the class held before, our hook)
        self._hooked: list[tuple[Any, str, Any, Method]] = []
        self._lock = threading.Lock()

    def wrap(self, targets: Targets) -> list[str]:
        """Hook every target the SDK has; the names of those it does not have."""
        missing: list[str] = []
        for module_name, dotted, factory in targets:
            found = _resolve(module_name, dotted)
            if found is None:
                missing.append(f"{module_name}.{dotted}")
                continue
            owner, method = found
            before = vars(owner).get(method, _ABSENT)
            # As the class gives it: the function, or another library's wrapper bound to the
            # class (which then takes the instance from the first argument, as we pass it).
            original = getattr(owner, method)
            hook = functools.wraps(original)(factory(self, original))
            setattr(owner, method, hook)
            self._hooked.append((owner, method, before, hook))
        return missing

    def add_request_hooks_for(self, config: Any) -> None:
        """Hook the request seams if ``config`` may run automatic function calling (it has
        tools). Never raises: the call goes on, instrumented, whatever happens here."""
        try:
            if not has_tools(config):
                return
            with self._lock:
                if self.request_hooks or self.closed:
                    return
                self.request_hooks = True  # once: a target that failed to hook is not retried
                self.wrap(REQUEST_TARGETS + TOOL_TARGETS)
        except Exception:
            _logger.debug("gemini instrumentation: could not add the request hooks", exc_info=True)

    def unpatch(self) -> None:
        """Put back what each class held. A hook another library has since wrapped stays
        where it is (removing it would remove theirs too) and passes calls through."""
        with self._lock:
            self.closed = True  # an adapter still running must not hook anything again
            # Calls still open (a stream read after this) make their attempts unseen from here:
            # each counts as one attempt, as without the seam (Recorder.record).
            self.recorder.per_attempt = False
            for owner, method, before, hook in reversed(self._hooked):
                if vars(owner).get(method) is not hook:
                    _logger.debug("gemini instrumentation: %s.%s was rewrapped", owner, method)
                elif before is _ABSENT:
                    delattr(owner, method)
                else:
                    setattr(owner, method, before)
            self._hooked.clear()


def patch(recorder: Recorder) -> Patches:
    """Wrap the call and attempt targets that exist; warn, naming the SDK version, about any
    target that does not (request targets included, though they are wrapped later).

    Sets ``recorder.per_attempt`` to whether the per-attempt seam is in place (without it each
    call counts as one attempt).
    """
    patches = Patches(recorder)
    missing = patches.wrap(
        CALL_TARGETS
        + MEDIA_TARGETS
        + CACHE_TARGETS
        + BATCH_TARGETS
        + ATTEMPT_TARGETS
        + LIVE_TARGETS
    )
    missing += [f"{m}.{d}" for m, d, _ in REQUEST_TARGETS if _resolve(m, d) is None]
    # The Interactions API's own HTTP stack is slow to import: hooked when the app first uses it.
    hook_when_used(patches)
    if recorder.settings.retry_policy == "respect_retry_info":  # opt-in: "sdk" hooks nothing
        from .retry_policy import RETRY_POLICY_TARGETS

        missing += patches.wrap(RETRY_POLICY_TARGETS)
    # Tool runs only add spans (nothing is counted there): an SDK without them is not worth a
    # warning, only a note.
    no_tools = [f"{m}.{d}" for m, d, _ in TOOL_TARGETS if _resolve(m, d) is None]
    if no_tools:
        _logger.debug("gemini instrumentation: no tool spans for %s", ", ".join(no_tools))
    attempt_names = {f"{m}.{d}" for m, d, _ in ATTEMPT_TARGETS}
    recorder.per_attempt = not attempt_names.intersection(missing)
    if missing:
        _logger.warning(
            "opentelemetry-instrumentation-gemini: google-genai %s does not have %s; "
            "those calls are not instrumented%s. Please report this SDK version.",
            sdk_version(),
            ", ".join(missing),
            "" if recorder.per_attempt else " (and SDK retries are not counted per attempt)",
        )
    return patches
