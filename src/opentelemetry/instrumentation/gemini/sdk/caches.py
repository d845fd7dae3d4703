"""Adapters for context caches (``client.caches``): not yet covered; their HTTP attempts are
counted by attempts.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .seams import Targets

CACHE_TARGETS: Targets = ()
