"""Two `dvc repro` at once in one project: DVC's own lock refuses the second, clearly.

No stack needed: a one-stage pipeline that marks when it starts, then sleeps, so the second
`dvc repro` is launched while the first one is surely inside the stage.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

DVC = str(Path(sys.executable).parent / "dvc")
STAGE_SECONDS = 5
DVC_YAML = f"""\
stages:
  slow:
    cmd: touch started && sleep {STAGE_SECONDS} && echo done > out.txt
    outs:
      - out.txt
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    for cmd in (["git", "init", "-q"], [DVC, "init", "-q"]):
        subprocess.run(cmd, cwd=proj, check=True)
    (proj / "dvc.yaml").write_text(DVC_YAML)
    return proj


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _error_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("ERROR"))


@pytest.mark.timeout(60)
def test_second_dvc_repro_is_refused_by_the_lock(project: Path, reliability) -> None:
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    first = subprocess.Popen([DVC, "repro"], cwd=project, **pipe)
    try:
        _wait_for(project / "started", timeout=30)
        second = subprocess.run([DVC, "repro"], cwd=project, timeout=30, **pipe)
    finally:
        first_out, _ = first.communicate(timeout=30)
    assert first.returncode == 0, first_out
    assert (project / "out.txt").read_text() == "done\n"
    assert second.returncode != 0, second.stdout
    line = _error_line(second.stdout).replace(str(project), "PROJECT")
    # Which lock depends on timing: the repo lock, or the stage's rwlock on its output.
    assert "lock" in second.stdout.lower() and "Traceback" not in second.stdout, second.stdout
    lock = ".dvc/tmp/rwlock" if "rwlock" in second.stdout else ".dvc/tmp/lock"
    reliability(
        "two `dvc repro` at once",
        f"first exit 0; second exit {second.returncode} ({lock}): {line}",
    )
