"""README's snippets run as written.

Convention: an HTML comment on the line before a fenced block says what to do with it:

    <!-- readme-test: run -->               bash: ``bash -euo pipefail``; python: ``python -c``
    <!-- readme-test: run-instrumented -->  python under ``opentelemetry-instrument``
    <!-- readme-test: skip REASON -->       not run; the reason is required

Only marked blocks are touched, so sections added to README without markers change nothing here.
Snippets run from the repository root with this venv's ``bin`` first on ``PATH`` (``python``,
``opentelemetry-instrument`` are the ones under test), telemetry exporters off unless the snippet
sets its own, and ``PORT`` set to a free loopback port for snippets that start a server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"^<!--\s*readme-test:\s*(run-instrumented|run|skip)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Snippet:
    line: int  # 1-based line of the opening fence
    action: str
    reason: str
    language: str
    code: str

    @property
    def id(self) -> str:
        first = next((ln for ln in self.code.splitlines() if ln.strip()), "")
        return f"L{self.line}-{self.language}-{first[:40]}"


def snippets(text: str) -> list[Snippet]:
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        marker = MARKER.match(line)
        if marker is None:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        fence = FENCE.match(lines[j]) if j < len(lines) else None
        if fence is None:
            raise AssertionError(f"README line {i + 1}: a readme-test marker not before a block")
        end = j + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        code = "\n".join(lines[j + 1 : end]) + "\n"
        found.append(Snippet(j + 1, marker.group(1), marker.group(2), fence.group(1), code))
    return found


ALL = snippets(README.read_text(encoding="utf-8"))
TO_RUN = [s for s in ALL if s.action != "skip"]


def test_markers_are_well_formed() -> None:
    assert len(TO_RUN) >= 4, [s.id for s in ALL]
    for snippet in ALL:
        if snippet.action == "skip":
            assert snippet.reason, f"{snippet.id}: a skip needs a reason"
        else:
            assert snippet.language in ("bash", "python"), snippet.id
        if snippet.action == "run-instrumented":
            assert snippet.language == "python", snippet.id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_INSTRUMENTATION_GEMINI_") and k != "PYTHONPATH"
    }
    env.update(
        PATH=os.pathsep.join([bindir, env.get("PATH", "")]),
        PORT=str(_free_port()),
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="httpx,requests,urllib3,urllib,asyncio,threading",
    )
    return env


@pytest.mark.parametrize("snippet", TO_RUN, ids=[s.id for s in TO_RUN])
def test_snippet_runs_as_written(snippet: Snippet) -> None:
    if snippet.language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", snippet.code]
    elif snippet.action == "run-instrumented":
        launcher = Path(sys.executable).with_name("opentelemetry-instrument")
        if not launcher.exists():
            pytest.skip("opentelemetry-instrument is not installed")
        command = [str(launcher), sys.executable, "-c", snippet.code]
    else:
        command = [sys.executable, "-c", snippet.code]
    out = subprocess.run(
        command,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, f"README line {snippet.line}:\n{out.stdout}\n{out.stderr}"
    if "opentelemetry-instrument" in snippet.code:
        # The zero-code recipe: the console exporter printed a priced span.
        assert '"name": "generate_content gemini-2.5-flash"' in out.stdout, out.stdout
        assert '"gen_ai.usage.cost.amount"' in out.stdout


# `test_file.py::test_name` names a test; a bare `::test_name` is in the file named last before it.
TEST_REFERENCE = re.compile(r"`(test_\w+\.py)?::(test_\w+)`|`(test_\w+\.py)`")


def test_every_test_readme_names_exists() -> None:
    """README's Guarantees back each promise with named tests: a renamed or moved test must not
    leave a promise pointing at nothing."""
    missing = []
    current = None
    for match in TEST_REFERENCE.finditer(README.read_text(encoding="utf-8")):
        current = match.group(1) or match.group(3) or current
        name = match.group(2)
        if name is None:
            continue
        source = (ROOT / "tests" / str(current)).read_text(encoding="utf-8")
        if not re.search(rf"^(async )?def {name}\(", source, re.M):
            missing.append(f"{current}::{name}")
    assert not missing
