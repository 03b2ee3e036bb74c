"""Local dev S3 keys: generated once per checkout, kept in `.stack/credentials.json` (0600).

Its own module, below both `gglops.core.settings` (which hands the keys to clients) and
`devstack` (which creates them), so that neither imports the other for them."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from gglops.core.files import atomic_write

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: SecretStr

    def weed_identity(self) -> dict[str, object]:
        """SeaweedFS `-s3.config` content: one admin identity with these keys."""
        keys = {"accessKey": self.access_key, "secretKey": self.secret_key.get_secret_value()}
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        return {"identities": [{"name": "gglops", "credentials": [keys], "actions": actions}]}


def write_private(path: Path, text: str) -> None:
    """Write a secret file: mode 0600 from creation, atomically (never half-written)."""
    atomic_write(path, text, mode=0o600)


def read_credentials(stack_dir: Path) -> Credentials | None:
    path = stack_dir / CREDENTIALS_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Credentials(data["access_key"], SecretStr(data["secret_key"]))


def load_or_create(stack_dir: Path) -> Credentials:
    """The checkout's keys; created on first use (never a constant in code)."""
    existing = read_credentials(stack_dir)
    if existing is not None:
        return existing
    creds = Credentials(f"gglops-{secrets.token_hex(6)}", SecretStr(secrets.token_hex(24)))
    payload = {"access_key": creds.access_key, "secret_key": creds.secret_key.get_secret_value()}
    write_private(stack_dir / CREDENTIALS_FILE, json.dumps(payload))
    return creds


def local_stack_keys(stack_dir: Path, endpoint: str) -> tuple[str, str] | None:
    """The stack's keys if `endpoint` is the S3 that this stack dir's `up` serves."""
    creds = read_credentials(stack_dir)
    served = stack_dir / "s3-endpoint"
    if creds is None or not served.exists() or served.read_text().strip() != endpoint:
        return None
    return creds.access_key, creds.secret_key.get_secret_value()
