"""`gglops serve`: the registry alias's verified ONNX model over HTTP (Ray Serve)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gglops.serve.launch import Serving


def serve(
    alias: Annotated[str, typer.Option(help="Registry alias to serve and follow.")] = "champion",
    host: Annotated[str, typer.Option(help="Address the HTTP proxy binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    replicas: Annotated[int, typer.Option(min=1, help="Serve replicas.")] = 1,
    address: Annotated[
        str | None, typer.Option(help="Ray to run on (else GGLOPS_RAY_ADDRESS, else local).")
    ] = None,
    poll_s: Annotated[
        float, typer.Option("--poll-s", min=0.1, help="Seconds between alias checks.")
    ] = 2.0,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="More pixels get HTTP 413 (default 4096×4096).")
    ] = None,
) -> None:
    """Serve models:/gglnet@ALIAS on Ray Serve: POST /predict, GET /healthz; follows the alias."""
    from gglops.core.settings import load_settings
    from gglops.serve.launch import ServeRequest, serve_forever

    request = ServeRequest(alias, host, port, replicas, address, poll_s, max_pixels)
    serve_forever(request, load_settings(), ready=_serving_line)


def _serving_line(serving: Serving) -> None:
    url = serving.url
    typer.echo(
        f"serving models:/{serving.model}@{serving.alias} version {serving.version} "
        f"(sha256 {serving.sha256[:12]}…) at {url}: POST {url}/predict, GET {url}/healthz; "
        f"following the alias every {serving.poll_s:g} s; Ctrl-C stops"
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
