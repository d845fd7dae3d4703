"""``python -m opentelemetry.instrumentation.gemini``: see cli.py."""

from .cli import main

raise SystemExit(main())
