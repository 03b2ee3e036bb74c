"""`make docs`: the README's reliability block and docs/reliability.md from the last full
`make test` (its rows are in build/reliability.json; see tests/fixtures_reliability.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS_FILE = ROOT / "build" / "reliability.json"
README = ROOT / "README.md"
PAGE = ROOT / "docs" / "reliability.md"
MARK_BEGIN, MARK_END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


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
    body = table(json.loads(ROWS_FILE.read_text()))
    _write(PAGE, "# Reliability: faults and bad input tried by the test suite\n\n" + body)
    head, rest = README.read_text().split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    _write(README, f"{head}{MARK_BEGIN}\n{body}{MARK_END}{tail}")
    print(f"wrote {PAGE.relative_to(ROOT)} and the README's reliability block")
    return 0


if __name__ == "__main__":
    sys.exit(main())
