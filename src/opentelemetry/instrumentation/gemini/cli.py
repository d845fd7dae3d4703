"""``python -m opentelemetry.instrumentation.gemini``: the questions people ask before and after
wiring telemetry, answered from the same data and code the instrumentation uses.

    prices MODEL [--tier T] [--traffic-type TYPE]      the prices used, their version and date
    limits MODEL [--tier T]                            the tier's published rate limits
    estimate --model M --input N --output N [--cached N] [--tier T] [--traffic-type TYPE]
    doctor                                             is everything in place?

Every command takes ``--json`` (one JSON document on stdout) and ``--prices-file`` /
``--limits-file`` where it reads them (default: the same environment variables as
``instrument()``). Exit codes, for scripts: 0 answered (doctor: no check failed), 1 no answer
(the model has no price or no limits; doctor: a check failed), 2 bad command line, 3 a prices or
limits file cannot be used.

Rates are read through ``PriceBook.cost()`` itself (the cost of one million tokens of each kind),
so what this prints is what a call is billed, not a second reading of the data.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import metadata
from typing import Any, TextIO
from urllib.parse import urlsplit

from .billing.book import PriceBook
from .billing.overrides import PricesFileError
from .bounds import MAX_COUNT
from .config import (
    ENV_LIMITS_FILE,
    ENV_PRICES_FILE,
    ENV_TIER,
    TIERS,
    UNKNOWN_TIER,
    normalize_tier,
)
from .package import _instruments
from .quota.limits import FIELDS, LimitsFileError, LimitTable, normalize_model
from .record.usage import Usage
from .version import __version__

EXIT_OK = 0
EXIT_NO_ANSWER = 1
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_BAD_FILE = 3

_MTOK = 1_000_000
_MODALITIES = ("audio", "image", "video")
# Far above any context window: the price of a prompt this long is the top long-context band.
_HUGE_PROMPT = 1 << 40
_ENTRY_POINT_GROUP = "opentelemetry_instrumentor"
# Our extras are dated data; older than this, doctor suggests upgrading.
_STALE_PRICES_DAYS = 120
_CONNECT_TIMEOUT = 1.0


class _Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- small helpers -------------------------------------------------------------------------------


def _usd(value: float) -> str:
    """Rounded for a reader: cents for large sums, six decimals below a dollar."""
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.2f}"
    return f"${value:.6f}".rstrip("0").rstrip(".")


def _round(value: float) -> float:
    # Float noise off (0.00039999999999999996 -> 0.0004); nine decimals keep a millionth of a cent.
    return round(value, 9)


def _file(arg: str | None, env: str) -> str | None:
    if arg is not None:
        return arg or None
    return os.environ.get(env) or None


def _tier(arg: str | None) -> tuple[str, str]:
    """(tier, where it came from): --tier, else the environment, else unknown."""
    if arg is not None:
        tier = normalize_tier(arg, origin="--tier")
        if tier == UNKNOWN_TIER and arg.strip().lower() != UNKNOWN_TIER:
            raise _Failure(EXIT_USAGE, f"--tier {arg!r}: expected one of {', '.join(TIERS)}")
        return tier, "--tier"
    value = os.environ.get(ENV_TIER)
    if value:
        return normalize_tier(value, origin=ENV_TIER), ENV_TIER
    return UNKNOWN_TIER, "default"


def _price_book(path: str | None) -> PriceBook:
    try:
        return PriceBook.load(path)
    except PricesFileError as error:
        raise _Failure(EXIT_BAD_FILE, f"prices file: {error}") from error


def _limit_table(path: str | None) -> LimitTable:
    try:
        return LimitTable.load(path)
    except LimitsFileError as error:
        raise _Failure(EXIT_BAD_FILE, f"limits file: {error}") from error


# --- prices --------------------------------------------------------------------------------------


def _prices(book: PriceBook, model: str, traffic_type: str | None) -> dict[str, Any] | None:
    def rate(part: str, **counts: Any) -> float | None:
        cost = book.cost(model, Usage(**counts), traffic_type=traffic_type)
        if cost is None:
            return None
        n = counts.get("prompt_tokens") or counts.get("candidates_tokens") or _MTOK
        return _round(getattr(cost, part) * _MTOK / n)

    # A one-token prompt is in the first band; one far above any context window has passed
    # every cliff (the top band). Rates are per token, so cost / tokens is the band's rate.
    small = {"prompt_tokens": 1, "total_tokens": 1}
    huge = {"prompt_tokens": _HUGE_PROMPT, "total_tokens": _HUGE_PROMPT}
    input_rate = rate("input", **small)
    if input_rate is None:
        return None  # no price for the model
    table: dict[str, Any] = {
        "input": input_rate,
        "cached_input": rate("cached_input", **small, cached_tokens=1),
        "output": rate("output", candidates_tokens=1, total_tokens=1),
    }
    if not table["cached_input"]:
        table["cached_input"] = None  # no cache-read price: cached tokens are billed as input
    for modality in _MODALITIES:
        value = rate("input", **small, prompt_by_modality={modality: 1})
        if value != table["input"]:
            table[f"input_{modality}"] = value
        value = rate(
            "output", candidates_tokens=1, total_tokens=1, candidates_by_modality={modality: 1}
        )
        if value != table["output"]:
            table[f"output_{modality}"] = value
    top_input = rate("input", **huge)
    if top_input != table["input"]:
        threshold = _cliff(lambda n: rate("input", prompt_tokens=n, total_tokens=n), table["input"])
        table["long_context"] = {
            "above_prompt_tokens": threshold,
            "input": top_input,
            "cached_input": rate("cached_input", **huge, cached_tokens=_HUGE_PROMPT) or None,
            # As many output tokens as prompt tokens: rate() divides by the prompt's length.
            "output": rate(
                "output",
                prompt_tokens=_HUGE_PROMPT,
                candidates_tokens=_HUGE_PROMPT,
                total_tokens=2 * _HUGE_PROMPT,
            ),
        }
    return table


def _cliff(rate_at: Callable[[int], float | None], base: float | None) -> int:
    """The largest prompt length still billed at the base rate (Google's cliff is "strictly
    above N"): a binary search over cost() itself."""
    low, high = 1, _HUGE_PROMPT
    while high - low > 1:
        mid = (low + high) // 2
        if rate_at(mid) == base:
            low = mid
        else:
            high = mid
    return low


def _cmd_prices(args: argparse.Namespace, out: TextIO) -> int:
    book = _price_book(_file(args.prices_file, ENV_PRICES_FILE))
    tier, tier_from = _tier(args.tier)
    model = normalize_model(args.model)
    table = _prices(book, model, args.traffic_type)
    billed = None
    if table is not None:
        probe = book.cost(model, Usage(prompt_tokens=1, total_tokens=1), tier=tier)
        billed = bool(probe.billed) if probe is not None else None
    result = {
        "model": model,
        "priced": table is not None,
        "unit": "USD per 1M tokens",
        "prices": table,
        "tier": tier,
        "tier_from": tier_from,
        "billed": billed,
        "traffic_type": args.traffic_type,
        "prices_version": book.prices_version,
        "data_date": _extras_date(book.prices_version),
    }
    if args.json:
        _dump(result, out)
    elif table is None:
        print(f"{model}: no price known (calls would be unpriced: unknown_model)", file=out)
        print(f"prices: {book.prices_version}", file=out)
    else:
        print(f"{model}: USD per 1M tokens ({result['prices_version']})", file=out)
        for key, value in table.items():
            if key == "long_context":
                continue
            shown = "billed as input" if value is None else _usd(value)
            print(f"  {key:<14} {shown}", file=out)
        long_context = table.get("long_context")
        if long_context:
            print(f"  prompts above {long_context['above_prompt_tokens']:,} tokens:", file=out)
            for key, value in long_context.items():
                if key != "above_prompt_tokens":
                    shown = "billed as input" if value is None else _usd(value)
                    print(f"    {key:<12} {shown}", file=out)
        if billed is False:
            print(f"  tier {tier} ({tier_from}): not billed (cost 0; list price above)", file=out)
        else:
            print(f"  tier {tier} ({tier_from}): billed at these prices", file=out)
    return EXIT_OK if table is not None else EXIT_NO_ANSWER


def _extras_date(version: str) -> str | None:
    # "genai-prices 0.2.3; gemini-extras 2026-11-23[; overrides ...]": our data's date.
    for part in version.split(";"):
        name, _, value = part.strip().partition(" ")
        if name == "gemini-extras":
            return value or None
    return None


# --- limits --------------------------------------------------------------------------------------


def _cmd_limits(args: argparse.Namespace, out: TextIO) -> int:
    table = _limit_table(_file(args.limits_file, ENV_LIMITS_FILE))
    model = normalize_model(args.model)
    tier, tier_from = _tier(args.tier)
    tiers = (tier,) if tier != UNKNOWN_TIER else TIERS
    found: dict[str, Any] = {}
    for name in tiers:
        limits = table.lookup(model, name)
        if limits is not None:
            found[name] = {field: getattr(limits, field) for field in FIELDS}
            found[name]["spend_limit_10m_usd"] = table.spend_limit_10m(name)
    result = {
        "model": model,
        "family": table.family(model),
        "tier": tier,
        "tier_from": tier_from,
        "limits": found,
        "version": table.version,
        "checked": table.checked,
        "source": table.source,
    }
    if args.json:
        _dump(result, out)
    elif not found:
        where = f"tier {tier}" if tier != UNKNOWN_TIER else "any tier"
        print(f"{model}: no published limits for {where} in limits {table.version}", file=out)
    else:
        print(
            f"{model} (row {result['family']}; limits {table.version}, checked "
            f"{table.checked}, {table.source}); null = no published limit",
            file=out,
        )
        for name, values in found.items():
            shown = ", ".join(
                f"{key}={'none' if value is None else format(value, ',')}"
                for key, value in values.items()
            )
            print(f"  {name}: {shown}", file=out)
    return EXIT_OK if found else EXIT_NO_ANSWER


# --- estimate ------------------------------------------------------------------------------------


def _count(text: str) -> int:
    value = int(text)
    # Above MAX_COUNT a call's count is clamped when recorded (bounds.count), and far above it
    # the cost overflows a float: an estimate for such a count would answer nothing real.
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_COUNT}")
    return value


def _cmd_estimate(args: argparse.Namespace, out: TextIO) -> int:
    if args.cached > args.input:
        raise _Failure(EXIT_USAGE, "--cached is part of --input and cannot exceed it")
    book = _price_book(_file(args.prices_file, ENV_PRICES_FILE))
    tier, tier_from = _tier(args.tier)
    model = normalize_model(args.model)
    usage = Usage(
        prompt_tokens=args.input,
        cached_tokens=args.cached,
        candidates_tokens=args.output,
        total_tokens=args.input + args.output,
        traffic_type=args.traffic_type,
    )
    cost = book.cost(model, usage, tier=tier)
    result: dict[str, Any] = {
        "model": model,
        "input_tokens": args.input,
        "cached_tokens": args.cached,
        "output_tokens": args.output,
        "tier": tier,
        "tier_from": tier_from,
        "traffic_type": args.traffic_type,
        "priced": cost is not None,
        "currency": "USD",
        "prices_version": book.prices_version,
    }
    if cost is not None:
        result["cost"] = _round(cost.total)
        result["list_cost"] = _round(cost.list_total)
        result["billed"] = bool(cost.billed)
        result["components"] = {name: _round(value) for name, value in cost.list_components}
    if args.json:
        _dump(result, out)
    elif cost is None:
        print(f"{model}: no price known; a call would be unpriced (unknown_model)", file=out)
    else:
        print(
            f"{model}: {_usd(cost.total)} for {args.input:,} input tokens "
            f"({args.cached:,} cached) and {args.output:,} output tokens",
            file=out,
        )
        parts = ", ".join(f"{name} {_usd(value)}" for name, value in cost.list_components)
        print(f"  at pay-as-you-go prices: {_usd(cost.list_total)} ({parts})", file=out)
        why = "not billed on this tier" if not cost.billed else "billed"
        print(f"  tier {tier} (from {tier_from}): {why}; prices: {book.prices_version}", file=out)
    return EXIT_OK if cost is not None else EXIT_NO_ANSWER


# --- doctor --------------------------------------------------------------------------------------


@dataclass
class _Check:
    name: str
    status: str  # ok, warn, fail
    detail: str


def _doctor_checks(args: argparse.Namespace) -> list[_Check]:
    checks = [_check_sdk(), _check_entry_point(), _check_tier()]
    checks += _check_price_data(_file(args.prices_file, ENV_PRICES_FILE))
    checks.append(_check_limits_file(_file(args.limits_file, ENV_LIMITS_FILE)))
    checks += _check_exporters()
    return checks


def _check_sdk() -> _Check:
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    try:
        installed = metadata.version("google-genai")
    except metadata.PackageNotFoundError:
        return _Check("google-genai", "fail", f"not installed; supported: {_instruments[0]}")
    conflict = get_dependency_conflicts(list(_instruments))
    if conflict is not None:
        return _Check("google-genai", "fail", f"{installed} is outside {_instruments[0]}")
    return _Check("google-genai", "ok", f"{installed} (supported: {_instruments[0]})")


def _check_entry_point() -> _Check:
    ours = [
        ep
        for ep in metadata.entry_points(group=_ENTRY_POINT_GROUP)
        if ep.value.startswith("opentelemetry.instrumentation.gemini")
    ]
    if not ours:
        return _Check(
            "entry point",
            "fail",
            f"no {_ENTRY_POINT_GROUP} entry point for gemini: opentelemetry-instrument will not "
            "load us (is opentelemetry-instrumentation-gemini installed in this environment?)",
        )
    name = ours[0].name
    disabled = [
        x.strip() for x in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    ]
    if name in disabled or "*" in disabled:
        return _Check(
            "entry point", "fail", f"{name!r} is listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
        )
    try:
        ours[0].load()
    except Exception as error:  # what opentelemetry-instrument would hit
        return _Check("entry point", "fail", f"{ours[0].value} does not load: {error!r}")
    try:
        metadata.version("opentelemetry-distro")
        launcher = "opentelemetry-instrument is available (opentelemetry-distro)"
    except metadata.PackageNotFoundError:
        launcher = "install opentelemetry-distro for the opentelemetry-instrument command"
    return _Check("entry point", "ok", f"{name} = {ours[0].value}; {launcher}")


def _check_tier() -> _Check:
    value = os.environ.get(ENV_TIER)
    if not value:
        return _Check(
            "tier",
            "warn",
            f"{ENV_TIER} is not set: the tier is 'unknown' until a 429 names it, calls are "
            "priced pay-as-you-go and the quota gauges have no limits",
        )
    tier = normalize_tier(value, origin=ENV_TIER)
    if tier == UNKNOWN_TIER:
        return _Check("tier", "fail", f"{ENV_TIER}={value!r} is not one of {', '.join(TIERS)}")
    return _Check("tier", "ok", f"{tier} (from {ENV_TIER})")


def _check_price_data(prices_file: str | None) -> list[_Check]:
    checks = []
    try:
        book = PriceBook.load(prices_file)
    except PricesFileError as error:
        checks.append(_Check("prices file", "fail", str(error)))
        book = PriceBook.load(None)
    else:
        detail = f"{prices_file} loads" if prices_file else f"none ({ENV_PRICES_FILE} unset)"
        checks.append(_Check("prices file", "ok", detail))
    version = book.prices_version
    dated = _extras_date(version)
    status, detail = "ok", version
    if dated:
        try:
            age = (datetime.now(timezone.utc).date() - date.fromisoformat(dated)).days
        except ValueError:
            age = None
        if age is not None:
            detail += f" (our data {age} days old)"
            if age > _STALE_PRICES_DAYS:
                status = "warn"
                detail += ": upgrade the package, or set a prices file, for newer models and prices"
    checks.append(_Check("price data", status, detail))
    return checks


def _check_limits_file(limits_file: str | None) -> _Check:
    try:
        table = LimitTable.load(limits_file)
    except LimitsFileError as error:
        return _Check("limits file", "fail", str(error))
    if limits_file is None:
        return _Check(
            "limits file",
            "ok",
            f"none ({ENV_LIMITS_FILE} unset); limits {table.version}, checked {table.checked}",
        )
    return _Check("limits file", "ok", f"{limits_file} loads (limits {table.version})")


def _otlp_endpoint(signal: str) -> tuple[str, str]:
    """(endpoint, protocol) the OTLP exporter of ``signal`` would use, as its env vars say."""
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
    endpoint = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or default
    )
    return endpoint, protocol


def _reachable(endpoint: str) -> str | None:
    """None when a TCP connection opens, else why not."""
    try:  # a malformed endpoint ("http://[::1") is a finding, not a traceback
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT):
            return None
    except (OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"


def _check_exporters() -> list[_Check]:
    checks = []
    for signal in ("traces", "metrics"):
        env = f"OTEL_{signal.upper()}_EXPORTER"
        exporters = [x.strip() for x in os.environ.get(env, "otlp").split(",") if x.strip()] or [
            "otlp"
        ]
        name = f"{signal} exporter"
        if exporters == ["none"]:
            checks.append(_Check(name, "warn", f"{env}=none: no {signal} leave the process"))
            continue
        # opentelemetry-instrument resolves each name through this entry point group; one not
        # installed stops its set-up. A warning only: apps that set up exporters in code skip it.
        group = f"opentelemetry_{signal}_exporter"
        known = {ep.name for ep in metadata.entry_points(group=group)}
        missing = [x for x in exporters if x != "none" and x not in known]
        if missing:
            hint = " (pip install opentelemetry-exporter-otlp)" if "otlp" in missing else ""
            checks.append(
                _Check(
                    name,
                    "warn",
                    f"{env}={','.join(exporters)}: no exporter named {', '.join(missing)} is "
                    f"installed{hint}; opentelemetry-instrument cannot set it up",
                )
            )
            continue
        if "otlp" not in exporters:
            checks.append(_Check(name, "ok", f"{env}={','.join(exporters)}"))
            continue
        endpoint, protocol = _otlp_endpoint(signal.upper())
        problem = _reachable(endpoint)
        if problem is None:
            checks.append(_Check(name, "ok", f"otlp ({protocol}) to {endpoint}: reachable"))
        else:
            checks.append(
                _Check(
                    name,
                    "warn",
                    f"otlp ({protocol}) to {endpoint}: not reachable ({problem}); the exporter "
                    "will log errors and retry (up to ~12 s at exit). Start a collector, set "
                    f"OTEL_EXPORTER_OTLP_ENDPOINT, or {env}=console to look locally",
                )
            )
    return checks


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    checks = _doctor_checks(args)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        _dump(
            {
                "version": __version__,
                "ok": not failed,
                "checks": [c.__dict__ for c in checks],
            },
            out,
        )
    else:
        print(f"opentelemetry-instrumentation-gemini {__version__}", file=out)
        for check in checks:
            print(f"  [{check.status:<4}] {check.name}: {check.detail}", file=out)
        print("some checks failed" if failed else "no check failed", file=out)
    return EXIT_NO_ANSWER if failed else EXIT_OK


# --- entry ---------------------------------------------------------------------------------------


def _dump(result: Mapping[str, Any], out: TextIO) -> None:
    json.dump(result, out, indent=2, sort_keys=False)
    out.write("\n")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document")
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument("--prices-file", help=f"prices JSON (default: ${ENV_PRICES_FILE})")
    files.add_argument("--limits-file", help=f"limits JSON (default: ${ENV_LIMITS_FILE})")
    tier = argparse.ArgumentParser(add_help=False)
    tier.add_argument("--tier", help=f"free, tier_1, tier_2, tier_3 (default: ${ENV_TIER})")

    parser = argparse.ArgumentParser(
        prog="python -m opentelemetry.instrumentation.gemini",
        description="Gemini prices, rate limits and cost estimates, and a set-up check.",
        epilog="Exit codes: 0 answered, 1 no answer (or a doctor check failed), "
        "2 bad command line, 3 a prices or limits file cannot be used.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prices", parents=[common, files, tier], help="the prices used for MODEL")
    p.add_argument("model")
    p.add_argument("--traffic-type", help="e.g. ON_DEMAND_FLEX, ON_DEMAND_PRIORITY, batch")

    p = sub.add_parser("limits", parents=[common, files, tier], help="MODEL's rate limits")
    p.add_argument("model")

    p = sub.add_parser("estimate", parents=[common, files, tier], help="what a call would cost")
    p.add_argument("--model", required=True)
    p.add_argument("--input", type=_count, required=True, help="prompt tokens (cached included)")
    p.add_argument("--output", type=_count, required=True, help="output tokens (thinking included)")
    p.add_argument("--cached", type=_count, default=0, help="of the input, tokens read from cache")
    p.add_argument("--traffic-type", help="e.g. ON_DEMAND_FLEX, ON_DEMAND_PRIORITY, batch")

    sub.add_parser("doctor", parents=[common, files], help="check the set-up")
    return parser


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "prices": _cmd_prices,
    "limits": _cmd_limits,
    "estimate": _cmd_estimate,
    "doctor": _cmd_doctor,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    # The library's warnings (an unknown tier, a model with no price) are said in the answer
    # itself here; errors still reach stderr.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    if out is None:
        out = sys.stdout
        # A model or file name from argv or the environment that is not UTF-8 arrives with
        # lone surrogates (surrogateescape); a strict UTF-8 stdout would raise on echoing it.
        if isinstance(out, io.TextIOWrapper) and out.errors == "strict":
            out.reconfigure(errors="backslashreplace")
    try:
        return _COMMANDS[args.command](args, out)
    except _Failure as failure:
        if args.json:
            _dump({"error": str(failure), "exit_code": failure.code}, out)
        print(f"error: {failure}", file=sys.stderr)
        return failure.code
