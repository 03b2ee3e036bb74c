"""The embedded local stack: SeaweedFS S3, an mlflow server and a Ray head on 127.0.0.1.

`Stack` (core) drives the services; `gglops.cli.stack` renders what `gglops stack` prints.
"""

from devstack.config import Ports, StackConfig
from devstack.core import Stack

__all__ = ["Ports", "Stack", "StackConfig"]
