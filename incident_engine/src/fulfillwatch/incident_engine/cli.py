"""The ``fulfillwatch`` command."""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from fulfillwatch.collector_processor.rest_ingest import hash_api_key
from fulfillwatch.collector_processor.store import InvalidDsn, StoreUnavailable, parse_dsn
from fulfillwatch.incident_engine.settings import ALL_ROLES, Role, SettingsError, load_settings

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
    _run(
        ALL_ROLES,
        config,
        log_level,
        data_dir=data_dir,
        otlp_port=otlp_port,
        api_port=api_port,
        host=host,
        demo=demo or None,
        engine_interval_s=engine_interval,
        default_timeout_s=default_timeout,
    )


def _run(roles: frozenset[Role], config: Path | None, log_level: str, **overrides: Any) -> None:
    """Validate the settings, say what runs where, and run ``roles`` until stopped."""
    _configure_logging(log_level)
    try:
        settings = load_settings(config, **overrides)
        location = parse_dsn(settings.clickhouse_dsn, settings.data_dir)
    except (SettingsError, InvalidDsn) as exc:
        _console.print(f"[red]fulfillwatch: invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    if roles != ALL_ROLES and location.embedded:
        command = next(iter(roles)) if len(roles) == 1 else "the split services"
        _console.print(
            f"[red]fulfillwatch {command}: needs a ClickHouse server[/red] "
            "(FULFILLWATCH_CLICKHOUSE_DSN=http(s)://user:password@host:8123/db). "
            f"The store is {location.describe()}: an embedded chDB directory can be opened by one process "
            "only, so on chDB run `fulfillwatch serve`, which hosts the receiver, the engine and the API "
            "in one process."
        )
        raise typer.Exit(2)
    lines = [f"[bold]Fulfillwatch[/bold] {' + '.join(sorted(roles))} · store {location.describe()}"]
    if "collector" in roles and settings.receive_otlp:
        lines.append(f"  OTLP/HTTP  http://{settings.host}:{settings.otlp_port}/v1/traces")
    if "api" in roles:
        lines.append(f"  API        http://{settings.host}:{settings.api_port}/api/incidents  (docs: /docs)")
        for service, target in settings.repair_targets.items():
            lines.append(f"  repair     {service} → {target.url} ({len(target.secrets)} signing secret(s))")
    if "engine" in roles and settings.otel_traces_table:
        lines.append(f"  importing  fulfillment spans from {settings.otel_traces_table}")
    if "api" in roles or "engine" in roles:
        for name, destination in settings.alerts.items():
            lines.append(f"  alerts     {name}: {destination.type}")
    if settings.demo:
        lines.append(f"  demo mode: API token [bold]{settings.token()}[/bold]")
    _console.print("\n".join(lines))
    from fulfillwatch.incident_engine.server import serve as run_server

    try:
        asyncio.run(run_server(settings, roles))
    except StoreUnavailable as exc:
        _console.print(f"[red]fulfillwatch: store unavailable:[/red] {exc}")
        raise typer.Exit(1) from None
    except RuntimeError as exc:
        _console.print(f"[red]fulfillwatch:[/red] {exc}")
        raise typer.Exit(1) from None


_Config = Annotated[
    Optional[Path], typer.Option("--config", help="TOML file (the same as serve's); the store is its DSN")
]
_LogLevel = Annotated[str, typer.Option(help="debug | info | warning | error")]


@app.command()
def collector(
    config: _Config = None,
    otlp_port: Annotated[Optional[int], typer.Option(help="OTLP/HTTP port [default 4318]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind [default 127.0.0.1]")] = None,
    log_level: _LogLevel = "info",
) -> None:
    """Split service: the OTLP/REST receiver only (needs a ClickHouse server; scale it out)."""
    _run(frozenset({"collector"}), config, log_level, otlp_port=otlp_port, host=host)


@app.command()
def engine(
    config: _Config = None,
    engine_interval: Annotated[Optional[float], typer.Option(help="Seconds between evaluations [default 5]")] = None,
    log_level: _LogLevel = "info",
) -> None:
    """Split service: incident detection only (needs a ClickHouse server; one runs, others stand by)."""
    _run(frozenset({"engine"}), config, log_level, engine_interval_s=engine_interval)


@app.command()
def api(
    config: _Config = None,
    api_port: Annotated[Optional[int], typer.Option(help="HTTP API port [default 8000]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind [default 127.0.0.1]")] = None,
    log_level: _LogLevel = "info",
) -> None:
    """Split service: the HTTP API, lifecycle actions and reprocess callbacks (needs a ClickHouse server)."""
    _run(frozenset({"api"}), config, log_level, api_port=api_port, host=host)


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
    """Run the whole product with an example shop that sometimes fails (Ctrl-C stops it).

    The demo lives in the checkout (``examples/demo.py``), not in this package: it needs the
    example shop, which is not installed with Fulfillwatch.
    """
    checkout = root.resolve()
    if not (checkout / "examples" / "demo.py").is_file():
        _console.print(
            f"[red]fulfillwatch demo:[/red] {checkout} is not a Fulfillwatch checkout "
            "(no examples/demo.py): run the demo from the repository's root, or pass --root"
        )
        raise typer.Exit(1)
    sys.path.insert(0, str(checkout))
    runner = importlib.import_module("examples.demo")
    code = runner.main(
        root=checkout,
        data_dir=data_dir.resolve(),
        ports={"otlp": otlp_port, "api": api_port, "dashboard": dashboard_port, "shop": shop_port, "redis": redis_port},
        rate=rate,
    )
    raise typer.Exit(int(code))


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
