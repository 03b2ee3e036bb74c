"""`make docs`: docs/reliability.md from the last full `make test` (its rows are in
build/reliability.json; see tests/fixtures_reliability.py). The page is generated whole, so
it never drifts from what the tests observed.

    python tools/tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS_FILE = ROOT / "build" / "reliability.json"
PAGE = ROOT / "docs" / "reliability.md"
INTRO = """\
# Reliability: faults and bad input tried by the test suite

Every row is written by the test that tried it (the `reliability` fixture of
`tests/fixtures_reliability.py`), with the line or state it observed, at the end of a full
`make test`; `make docs` writes this page from them. Faults run against the real services: a
Ray worker or node killed mid-epoch, S3 or MLflow stopped mid-run, a full disk, a diverging
loss, a planted secret searched for everywhere.

"""


def table(rows: list[dict[str, str]]) -> str:
    lines = ["| fault or bad input | observed outcome | test | result |", "|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: r["fault"]):
        observed = row["observed"].replace("|", "\\|")
        lines.append(f"| {row['fault']} | {observed} | `{row['test']}` | {row['outcome']} |")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> int:
    if not ROWS_FILE.exists():
        print(f"error: {ROWS_FILE.relative_to(ROOT)} is missing: run `make test` first")
        return 2
    _write(PAGE, INTRO + table(json.loads(ROWS_FILE.read_text())))
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
