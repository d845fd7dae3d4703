"""Adapters for Imagen and Veo (``client.models.generate_images``/``edit_image``/
``upscale_image``/``recontext_image``/``segment_image``, ``generate_videos`` and
``client.operations.get``): not yet covered; their HTTP attempts are counted by attempts.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .seams import Targets

MEDIA_TARGETS: Targets = ()
