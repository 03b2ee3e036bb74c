"""Exceptions that the CLI turns into one clear line and an exit code (never a traceback)."""


class GGLOpsError(Exception):
    """Base class: `exit_code` is what the CLI exits with."""

    exit_code = 2


class UsageError(GGLOpsError):
    """Bad input or configuration (a file, a setting, a CLI value): exit 2."""


class DataError(UsageError):
    """A dataset file or layout problem; the message names the file."""


class ServiceError(UsageError):
    """A service (S3, MLflow, Ray) is unreachable or refuses our credentials: exit 2."""


class CheckError(GGLOpsError):
    """A gate or a check said no (promotion gates, parity): exit 1."""

    exit_code = 1
