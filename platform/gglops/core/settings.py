"""Infrastructure settings (pydantic-settings, prefix GGLOPS_, optional .env).

Experiment knobs live in params.yaml (see `gglops.core.params`); this module only says where the
services are. With nothing set, everything points at the embedded local stack
(`gglops stack up`). Credentials follow boto3's own chain (AWS_* variables, profiles); the
ones we do hold are `SecretStr`, so they never print.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from gglops.core.errors import UsageError

DEFAULT_STACK_DIR = Path(".stack")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GGLOPS_", env_file=".env", extra="ignore")

    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    s3_endpoint_url: str = "http://127.0.0.1:8333"
    s3_bucket: str = "gglops"
    s3_region: str = "us-east-1"
    # Ray checkpoints and Tune state: a local path or an s3:// URI on the endpoint above.
    storage_path: str = str(Path("outputs/ray").absolute())
    ray_address: str | None = None
    # The Ray Jobs API (`gglops submit`) and the local head's GCS port (`gglops stack up`).
    ray_dashboard_url: str = "http://127.0.0.1:8265"
    ray_gcs_port: int = 6379
    stack_dir: Path = DEFAULT_STACK_DIR
    experiment_name: str = "gglnet"
    registered_model: str = "gglnet"
    # Optional explicit S3 keys; when unset boto3's chain (AWS_*, profiles) decides.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    mlflow_tracking_token: SecretStr | None = Field(default=None)
    # `evaluate` at original resolution refuses larger images (~180 B of memory per pixel).
    max_image_pixels: int = Field(default=2048 * 2048, ge=1)


def load_settings(**overrides: object) -> Settings:
    """Settings from env/.env; a bad value becomes one UsageError line naming the setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "GGLOPS_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
        raise UsageError(f"setting {name}: {err['msg']}") from None
    _share_tracking_token(settings)
    return settings


def _share_tracking_token(settings: Settings) -> None:
    """MLflow's client reads its bearer token only from MLFLOW_TRACKING_TOKEN: mirror ours
    there (this process and its children only) unless the user set MLflow's own."""
    if settings.mlflow_tracking_token is not None and not os.environ.get("MLFLOW_TRACKING_TOKEN"):
        os.environ["MLFLOW_TRACKING_TOKEN"] = settings.mlflow_tracking_token.get_secret_value()
