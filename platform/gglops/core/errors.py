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


class RunError(GGLOpsError):
    """A run failed inside its own code (a training worker raised): exit 1. The message
    says where the full traceback is."""

    exit_code = 1


REASON_CHARS = 200  # an underlying error's first line, as quoted inside one of ours


def first_line(exc: BaseException) -> str:
    """The first line of `exc` (cut to REASON_CHARS), or its type when it has no message."""
    text = str(exc)
    return text.splitlines()[0][:REASON_CHARS] if text.strip() else type(exc).__name__
