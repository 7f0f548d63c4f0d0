"""The ``fulfillwatch`` command."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from fulfillwatch.collector_processor.rest_ingest import hash_api_key
from fulfillwatch.collector_processor.store import InvalidDsn, StoreUnavailable, parse_dsn

from .settings import SettingsError, load_settings

app = typer.Typer(
    help="Fulfillwatch: find paid Stripe events whose business effect failed or never happened.",
    no_args_is_help=True,
    add_completion=False,
)
_console = Console(stderr=True)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=_console, show_path=False, rich_tracebacks=True)],
    )
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


@app.command()
def serve(
    data_dir: Annotated[
        Optional[Path], typer.Option(help="chDB data directory [env FULFILLWATCH_DATA_DIR; default ./.fulfillwatch]")
    ] = None,
    otlp_port: Annotated[Optional[int], typer.Option(help="OTLP/HTTP port [default 4318]")] = None,
    api_port: Annotated[Optional[int], typer.Option(help="HTTP API port [default 8000]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind [default 127.0.0.1]")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Allow running without FULFILLWATCH_API_TOKEN")] = False,
    engine_interval: Annotated[Optional[float], typer.Option(help="Seconds between evaluations [default 5]")] = None,
    default_timeout: Annotated[
        Optional[float], typer.Option(help="Deadline (s) for receipts that name none [default 1800]")
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="TOML file: repair_targets, alerts, ingest_projects, other settings"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
) -> None:
    """Run the OTLP receiver, the incident engine and the API in one process.

    The store is FULFILLWATCH_CLICKHOUSE_DSN (default: embedded ClickHouse in --data-dir).
    """
    _configure_logging(log_level)
    try:
        settings = load_settings(
            config,
            data_dir=data_dir,
            otlp_port=otlp_port,
            api_port=api_port,
            host=host,
            demo=demo or None,
            engine_interval_s=engine_interval,
            default_timeout_s=default_timeout,
        )
        location = parse_dsn(settings.clickhouse_dsn, settings.data_dir)
    except (SettingsError, InvalidDsn) as exc:
        _console.print(f"[red]fulfillwatch: invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    _console.print(
        f"[bold]Fulfillwatch[/bold] store {location.describe()}\n"
        f"  OTLP/HTTP  http://{settings.host}:{settings.otlp_port}/v1/traces\n"
        f"  API        http://{settings.host}:{settings.api_port}/api/incidents  (docs: /docs)"
    )
    for service, target in settings.repair_targets.items():
        _console.print(f"  repair     {service} → {target.url} ({len(target.secrets)} signing secret(s))")
    for name, destination in settings.alerts.items():
        _console.print(f"  alerts     {name}: {destination.type}")
    if settings.demo:
        _console.print(f"  demo mode: API token [bold]{settings.token()}[/bold]")
    from .server import serve as run_server

    try:
        asyncio.run(run_server(settings))
    except StoreUnavailable as exc:
        _console.print(f"[red]fulfillwatch: store unavailable:[/red] {exc}")
        raise typer.Exit(1) from None
    except RuntimeError as exc:
        _console.print(f"[red]fulfillwatch:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def demo(
    root: Annotated[Path, typer.Option(help="The Fulfillwatch checkout (the example shop lives there)")] = Path("."),
    data_dir: Annotated[Path, typer.Option(help="Demo data, wiped at start")] = Path(".fulfillwatch/demo"),
    dashboard_port: int = 8501,
    api_port: int = 8000,
    otlp_port: int = 4318,
    shop_port: int = 8100,
    redis_port: int = 6390,
    rate: Annotated[float, typer.Option(help="Webhooks per second")] = 1.5,
) -> None:
    """Run the whole product with an example shop that sometimes fails (Ctrl-C stops it)."""
    from .demo import Demo, DemoError, DemoPorts

    token = os.environ.get("FULFILLWATCH_API_TOKEN") or secrets.token_urlsafe(24)
    ports = DemoPorts(otlp=otlp_port, api=api_port, dashboard=dashboard_port, shop=shop_port, redis=redis_port)

    def announce(running: Demo) -> None:
        _console.print(
            f"\n[bold green]Fulfillwatch demo is running.[/bold green] Incidents appear within a minute.\n"
            f"  Dashboard  [bold]{running.dashboard_url}[/bold]  (demo mode: no login)\n"
            f"  API        {running.api_url}/docs   token [bold]{token}[/bold]\n"
            f"  Logs       {running.logs}\n"
            "Open an incident whose reason is a PlanMappingError and click Reprocess: the shop repairs it.\n"
            "Press Ctrl-C to stop."
        )

    try:
        Demo(root.resolve(), data_dir.resolve(), ports, token, rate).run_until_stopped(announce)
    except DemoError as exc:
        _console.print(f"[red]fulfillwatch demo:[/red] {exc}")
        raise typer.Exit(1) from None
    _console.print("demo stopped")


@app.command("new-secret")
def new_secret() -> None:
    """Print a new whsec_ signing secret for a repair target (put it in the config and the app)."""
    typer.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


@app.command("new-api-key")
def new_api_key(project: Annotated[str, typer.Argument(help="Project name")], service: str = "") -> None:
    """Print a REST ingest API key and the config table that accepts it (only its hash is stored)."""
    key = "fwk_" + secrets.token_urlsafe(32)
    typer.echo(f"API key (give it to the app; it is not stored anywhere): {key}\n")
    typer.echo(f'[ingest_projects."{project}"]\nkey_sha256 = "{hash_api_key(key)}"\nservice = "{service or project}"')


@app.callback()
def _root() -> None:
    """Fulfillwatch command line."""


def main() -> None:
    """Entry point of the ``fulfillwatch`` script."""
    app()
