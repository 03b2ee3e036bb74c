"""Ray's token auth, read where Ray's own clients look, for its HTTP APIs (dashboard, Jobs)."""

from __future__ import annotations

import os
from pathlib import Path


def ray_token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def ray_token() -> str | None:
    """Ray's auth token, found where Ray's own clients look (env, then token file)."""
    path = ray_token_path()
    token = os.environ.get("RAY_AUTH_TOKEN") or (path.read_text().strip() if path.exists() else "")
    return token or None


def ray_auth_headers() -> dict[str, str]:
    """Ray's token auth header for its HTTP APIs (dashboard, Jobs)."""
    token = ray_token()
    return {"Authorization": f"Bearer {token}"} if token else {}
