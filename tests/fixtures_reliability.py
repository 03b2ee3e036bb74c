"""The reliability table of docs/reliability.md, produced by the tests themselves.

A fault-injection or bad-input test takes the `reliability` fixture and records what it
actually observed (exit code, the message, what was left unchanged):

    def test_s3_down(reliability): ...
        reliability("S3 stopped during promotion", f"exit {rc}; aliases unchanged; {line}")

At the end of a full run (`make test`), the rows and each test's pass/fail outcome go to
build/reliability.json; `make docs` (tools/tables.py) turns them into docs/reliability.md (a
test run never rewrites tracked files).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS_FILE = ROOT / "build" / "reliability.json"


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep the rows of a full run (no -k/-m filter, the default test paths) for `make docs`."""
    config = session.config
    full_run = (
        not config.option.keyword
        and not config.option.markexpr
        and (config.args in (["tests"], [str(ROOT / "tests")]) or config.args == [])
    )
    if not _ROWS or not full_run:
        return
    ROWS_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = ROWS_FILE.with_name(f".{ROWS_FILE.name}.tmp")
    tmp.write_text(json.dumps([asdict(row) for row in _ROWS], indent=1) + "\n")
    tmp.replace(ROWS_FILE)
