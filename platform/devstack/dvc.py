"""Point a DVC repo's remote at the local stack: keys go to `.dvc/config.local` (gitignored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack.core import Stack
from gglops.core.errors import ServiceError

REMOTE = "store"


def _dvc(repo: Path, *args: str) -> None:
    dvc = Path(sys.executable).parent / "dvc"
    done = subprocess.run(
        [str(dvc) if dvc.exists() else "dvc", *args], cwd=repo, capture_output=True, text=True
    )
    if done.returncode != 0:
        # Name the command, never its values (they include the secret key).
        raise ServiceError(f"dvc {' '.join(args[:3])} failed in {repo}: exit {done.returncode}")


def configure_local_remote(repo: Path, stack: Stack, remote: str = REMOTE) -> bool:
    """Write this stack's endpoint and keys for `remote` into the repo's local DVC config.

    Returns False (and does nothing) when `repo` is not a DVC repo.
    """
    if not (repo / ".dvc").is_dir():
        return False
    secret = stack.creds.secret_key.get_secret_value()
    settings = {
        "endpointurl": stack.config.s3_endpoint,
        "access_key_id": stack.creds.access_key,
        "secret_access_key": secret,
    }
    for key, value in settings.items():
        _dvc(repo, "remote", "modify", "--local", remote, key, value)
    return True
