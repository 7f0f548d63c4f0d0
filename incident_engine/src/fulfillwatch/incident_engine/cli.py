"""The ``fulfillwatch`` command."""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from fulfillwatch.collector_processor.ingest_auth import hash_api_key
from fulfillwatch.collector_processor.store import InvalidDsn, StoreLocation, StoreUnavailable, parse_dsn
from fulfillwatch.incident_engine.config import check_name
from fulfillwatch.incident_engine.logs import LogFormat, configure_logging
from fulfillwatch.incident_engine.reconcile_cli import register as register_reconcile
from fulfillwatch.incident_engine.settings import ALL_ROLES, Role, ServerSettings, SettingsError, load_settings
from fulfillwatch.incident_engine.stripe_config import check_backfill, parse_duration

app = typer.Typer(
    help="Fulfillwatch: find paid Stripe events whose business effect failed or never happened.",
    no_args_is_help=True,
    add_completion=False,
    # Errors are reported in one line; a server's output is not the place for rendered tracebacks.
    pretty_exceptions_enable=False,
)
_console = Console(stderr=True)
_logger = logging.getLogger("fulfillwatch")


_LogLevel = Annotated[str, typer.Option(help="debug | info | warning | error")]
_StripeBackfill = Annotated[
    Optional[str],
    typer.Option(
        help="With a stripe table: how far back a first start reads Stripe's events, e.g. 7d (default: its backfill)"
    ),
]
_LogFormatOption = Annotated[str, typer.Option("--log-format", help="plain | json (one JSON object per line)")]


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
    stripe_backfill: _StripeBackfill = None,
    log_level: _LogLevel = "info",
    log_format: _LogFormatOption = "plain",
) -> None:
    """Run the OTLP receiver, the incident engine and the API in one process.

    The store is FULFILLWATCH_CLICKHOUSE_DSN (default: embedded ClickHouse in --data-dir).
    """
    _run(
        ALL_ROLES,
        config,
        log_level,
        log_format,
        data_dir=data_dir,
        otlp_port=otlp_port,
        api_port=api_port,
        host=host,
        demo=demo or None,
        engine_interval_s=engine_interval,
        default_timeout_s=default_timeout,
        stripe_backfill=stripe_backfill,
    )


def _run(
    roles: frozenset[Role],
    config: Path | None,
    log_level: str,
    log_format: str,
    stripe_backfill: str | None = None,
    **overrides: Any,
) -> None:
    """Validate the settings, say what runs where, and run ``roles`` until stopped."""
    if log_format not in ("plain", "json"):
        _console.print(f"[red]fulfillwatch: --log-format must be plain or json, not {escape(log_format)!r}[/red]")
        raise typer.Exit(2)
    format_: LogFormat = "json" if log_format == "json" else "plain"
    configure_logging(log_level, format_)
    settings, location = _settings(config, **overrides)
    backfill = _backfill(stripe_backfill)
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
            lines.append(
                f"  repair     {escape(service)} → {target.describe()} ({len(target.secrets)} signing secret(s))"
            )
    if "engine" in roles and settings.otel_traces_table:
        lines.append(f"  importing  fulfillment spans from {settings.otel_traces_table}")
    if "engine" in roles and settings.stripe is not None:
        stripe = settings.stripe
        accounts = f"{len(stripe.accounts)} Connect account(s)" if stripe.accounts else "the key's own account"
        lines.append(
            f"  stripe     {len(stripe.event_types)} event type(s), {accounts}, every {stripe.poll_interval_s:.0f} s "
            f"({stripe.mode} mode; not_received after {stripe.grace_s:.0f} s)"
        )
    if "engine" in roles and settings.plans:
        lines.append(f"  plans      {', '.join(escape(t) for t in settings.plans)}")
    if "api" in roles or "engine" in roles:
        for name, destination in settings.alerts.items():
            lines.append(f"  alerts     {escape(name)}: {destination.type} → {destination.describe()}")
    if "collector" in roles and settings.receive_otlp:
        access = settings.ingest_access()
        auth = f"{len(access.keys)} ingest key(s)" if access.required else "OFF (no key needed)"
        lines.append(f"  ingest     {len(settings.projects)} project(s), authentication: {auth}")
    if settings.demo:
        lines.append(f"  demo mode: API token [bold]{settings.token()}[/bold]")
    _console.print("\n".join(lines))
    from fulfillwatch.incident_engine.server import serve as run_server

    try:
        asyncio.run(run_server(settings, roles, stripe_backfill=backfill))
    except StoreUnavailable as exc:
        _console.print(f"[red]fulfillwatch: store unavailable:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except RuntimeError as exc:
        _console.print(f"[red]fulfillwatch:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except Exception as exc:
        _logger.debug("fulfillwatch stopped by an error", exc_info=exc)
        first = str(exc).splitlines()[0] if str(exc) else ""
        _console.print(f"[red]fulfillwatch: stopped by an error:[/red] {type(exc).__name__}: {escape(first)}")
        raise typer.Exit(1) from None


def _settings(config: Path | None, **overrides: Any) -> tuple[ServerSettings, StoreLocation]:
    """Settings and the store's location, or exit 2 with the message naming the setting."""
    try:
        settings = load_settings(config, **overrides)
        return settings, parse_dsn(settings.clickhouse_dsn, settings.data_dir)
    except (SettingsError, InvalidDsn) as exc:
        _console.print(f"[red]fulfillwatch: invalid configuration:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _backfill(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(check_backfill(text))
    except ValueError as exc:
        _console.print(f"[red]fulfillwatch: --stripe-backfill:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


_Config = Annotated[
    Optional[Path], typer.Option("--config", help="TOML file (the same as serve's); the store is its DSN")
]


@app.command()
def collector(
    config: _Config = None,
    otlp_port: Annotated[Optional[int], typer.Option(help="OTLP/HTTP port [default 4318]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind [default 127.0.0.1]")] = None,
    log_level: _LogLevel = "info",
    log_format: _LogFormatOption = "plain",
) -> None:
    """Split service: the OTLP/REST receiver only (needs a ClickHouse server; scale it out)."""
    _run(frozenset({"collector"}), config, log_level, log_format, otlp_port=otlp_port, host=host)


@app.command()
def engine(
    config: _Config = None,
    engine_interval: Annotated[Optional[float], typer.Option(help="Seconds between evaluations [default 5]")] = None,
    stripe_backfill: _StripeBackfill = None,
    log_level: _LogLevel = "info",
    log_format: _LogFormatOption = "plain",
) -> None:
    """Split service: incident detection only (needs a ClickHouse server; one runs, others stand by)."""
    _run(frozenset({"engine"}), config, log_level, log_format, stripe_backfill, engine_interval_s=engine_interval)


@app.command()
def api(
    config: _Config = None,
    api_port: Annotated[Optional[int], typer.Option(help="HTTP API port [default 8000]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind [default 127.0.0.1]")] = None,
    log_level: _LogLevel = "info",
    log_format: _LogFormatOption = "plain",
) -> None:
    """Split service: the HTTP API, lifecycle actions and reprocess callbacks (needs a ClickHouse server)."""
    _run(frozenset({"api"}), config, log_level, log_format, api_port=api_port, host=host)


@app.command()
def demo(
    root: Annotated[Path, typer.Option(help="The Fulfillwatch checkout (the example shop lives there)")] = Path("."),
    data_dir: Annotated[Path, typer.Option(help="Demo data, wiped at start")] = Path(".fulfillwatch/demo"),
    dashboard_port: int = 8501,
    api_port: int = 8000,
    otlp_port: int = 4318,
    shop_port: int = 8100,
    redis_port: int = 6390,
    stripe_port: Annotated[int, typer.Option(help="The stand-in for Stripe's Events API")] = 12111,
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
        ports={
            "otlp": otlp_port,
            "api": api_port,
            "dashboard": dashboard_port,
            "shop": shop_port,
            "redis": redis_port,
            "stripe": stripe_port,
        },
        rate=rate,
    )
    raise typer.Exit(int(code))


@app.command("new-secret")
def new_secret() -> None:
    """Print a new whsec_ signing secret for a repair target (put it in the config and the app)."""
    typer.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def _check_names(names: list[str], what: str) -> None:
    for name in names:
        try:
            check_name(name, what)
        except ValueError as exc:
            typer.echo(f"fulfillwatch: {exc}", err=True)
            raise typer.Exit(2) from None


@app.command("new-api-key")
def new_api_key(
    name: Annotated[Optional[str], typer.Argument(help="The key's name (default: the first project)")] = None,
    project: Annotated[
        Optional[list[str]], typer.Option("--project", help="A project the key writes for (repeat for several)")
    ] = None,
    service: Annotated[
        Optional[list[str]], typer.Option("--service", help="A service.name of the project (also print its table)")
    ] = None,
) -> None:
    """Print a new ingest key (OTLP and REST) and the config tables that accept it.

    Only the key's SHA-256 goes into the configuration: the key itself is printed once, here.
    """
    projects = list(project or []) or ([name] if name else [])
    if not projects:
        typer.echo("fulfillwatch new-api-key: name the project: --project shop", err=True)
        raise typer.Exit(2)
    key_name = name or projects[0]
    _check_names([key_name], "ingest key")
    _check_names(projects, "project")
    key = "fwk_" + secrets.token_urlsafe(32)
    typer.echo(f"Ingest key (give it to the app or Collector; it is not stored anywhere): {key}\n")
    typer.echo(f'[ingest_keys."{key_name}"]\nsha256 = "{hash_api_key(key)}"\nprojects = {_toml_list(projects)}')
    if service:
        if len(projects) != 1:
            typer.echo("fulfillwatch new-api-key: --service needs exactly one --project", err=True)
            raise typer.Exit(2)
        typer.echo(f'\n[projects."{projects[0]}"]\nservices = {_toml_list(list(service))}')


@app.command("new-api-token")
def new_api_token(
    name: Annotated[str, typer.Argument(help="The token's name: the actor the audit trail records")],
    scope: Annotated[
        Optional[list[str]],
        typer.Option("--scope", help="read | operate | admin | act_as (repeat for several) [default read]"),
    ] = None,
) -> None:
    """Print a new API token and the config table that accepts it (only its SHA-256 is stored)."""
    scopes = list(scope or ["read"])
    unknown = sorted(set(scopes) - {"read", "operate", "admin", "act_as"})
    if unknown:
        typer.echo(f"fulfillwatch new-api-token: unknown scope(s) {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    _check_names([name], "API token")
    token = "fwt_" + secrets.token_urlsafe(32)
    typer.echo(f"API token (give it to its user; it is not stored anywhere): {token}\n")
    typer.echo(f'[api_tokens."{name}"]\nsha256 = "{hash_api_key(token)}"\nscopes = {_toml_list(scopes)}')


register_reconcile(app, _settings)


@app.callback()
def _root() -> None:
    """Fulfillwatch command line."""


def main() -> None:
    """Entry point of the ``fulfillwatch`` script."""
    app()
