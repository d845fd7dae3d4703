"""Quota: 429 bodies parsed, per-tier limits as dated data, in-process rolling windows."""
