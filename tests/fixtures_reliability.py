"""The README "Reliability" table, produced by the tests themselves.

A fault-injection or bad-input test takes the `reliability` fixture and records what it
actually observed (exit code, the message, what was left unchanged):

    def test_s3_down(reliability): ...
        reliability("S3 stopped during promotion", f"exit {rc}; aliases unchanged; {line}")

At the end of a full run (`make test`), the rows go to docs/reliability.md and into the
README between the reliability markers, with each test's pass/fail outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK_BEGIN, MARK_END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


@dataclass
class Row:
    fault: str
    observed: str
    test: str
    outcome: str = "not finished"


_ROWS: list[Row] = []
_KEY = pytest.StashKey[list[Row]]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Record one fault/bad input and the outcome this test observed."""
    rows = request.node.stash.setdefault(_KEY, [])

    def record(fault: str, observed: str) -> None:
        row = Row(fault=fault, observed=" ".join(observed.split())[:300], test=request.node.name)
        rows.append(row)
        _ROWS.append(row)

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        for row in item.stash.get(_KEY, []):
            row.outcome = "pass" if report.passed else "FAIL"
    return report


def _table() -> str:
    lines = ["| fault or bad input | observed outcome | test | result |", "|---|---|---|---|"]
    for row in sorted(_ROWS, key=lambda r: r.fault):
        observed = row.observed.replace("|", "\\|")
        lines.append(f"| {row.fault} | {observed} | `{row.test}` | {row.outcome} |")
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Publish the table only after a full run (no -k/-m filter, the default test paths)."""
    config = session.config
    full_run = (
        not config.option.keyword
        and not config.option.markexpr
        and (config.args in (["tests"], [str(ROOT / "tests")]) or config.args == [])
    )
    if not _ROWS or not full_run:
        return
    table = _table()
    (ROOT / "docs" / "reliability.md").write_text(
        "# Reliability: faults and bad input tried by the test suite\n\n" + table
    )
    readme = ROOT / "README.md"
    text = readme.read_text()
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        _, tail = rest.split(MARK_END, 1)
        readme.write_text(f"{head}{MARK_BEGIN}\n{table}{MARK_END}{tail}")
