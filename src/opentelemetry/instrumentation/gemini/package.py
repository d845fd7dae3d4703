"""The one place that names the google-genai range we support (pyproject's extra mirrors it)."""

_instruments = ("google-genai >= 1.10.0, < 4",)
