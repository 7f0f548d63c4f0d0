"""The ``fulfillwatch reconcile`` command (the comparison itself is :mod:`.reconcile`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fulfillwatch.collector_processor.ingest_auth import DEFAULT_PROJECT
from fulfillwatch.collector_processor.store import StoreLocation, StoreUnavailable
from fulfillwatch.incident_engine.detection.declared import DeclaredCheck
from fulfillwatch.incident_engine.incidents.incident_log import Journal
from fulfillwatch.incident_engine.reconcile import ReconcileSummary, reconcile
from fulfillwatch.incident_engine.settings import ServerSettings
from fulfillwatch.incident_engine.sources.stripe_api import StripeRefused, StripeUnavailable
from fulfillwatch.incident_engine.sources.stripe_events import Reconciler
from fulfillwatch.incident_engine.stripe_config import parse_duration

SettingsLoader = Callable[..., tuple[ServerSettings, StoreLocation]]
#: At most this many unreported events are listed (the counts are always complete).
_LISTED = 200


def register(app: typer.Typer, load: SettingsLoader) -> None:
    """Add ``reconcile`` to ``app``; ``load(config)`` validates the configuration or exits."""

    @app.command("reconcile")
    def reconcile_command(
        since: Annotated[str, typer.Option(help="How far back to compare, e.g. 3d, 12h (at most 30d)")] = "3d",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report; store nothing")] = False,
        config: Annotated[
            Optional[Path], typer.Option("--config", help="TOML file with [stripe] (the same as serve's)")
        ] = None,
    ) -> None:
        """Compare Stripe's events of a period with the receipts the app recorded.

        Prints how many Stripe events were seen, how many have receipts and the ones that do not
        (what becomes not_received). Without --dry-run they are recorded and checked at once.
        On the embedded store, stop `fulfillwatch serve` first (one process owns a chDB directory).
        """
        console = Console()
        settings, location = load(config)
        if settings.stripe is None:
            console.print(f"[red]fulfillwatch reconcile: the configuration has no {escape('[stripe]')} table[/red]")
            raise typer.Exit(2)
        try:
            span = parse_duration(since)
            if span.days > 30:
                raise ValueError("Stripe keeps events for 30 days")
        except ValueError as exc:
            console.print(f"[red]fulfillwatch reconcile: --since {escape(since)}: {escape(str(exc))}[/red]")
            raise typer.Exit(2) from None
        from fulfillwatch.incident_engine.server import prepare_store

        try:
            store = prepare_store(settings)
        except (StoreUnavailable, RuntimeError) as exc:
            console.print(
                f"[red]fulfillwatch reconcile: cannot open the store {location.describe()}[/red] "
                f"({escape(str(exc).splitlines()[0])}); on chDB stop `fulfillwatch serve` first"
            )
            raise typer.Exit(1) from None
        plans = {event_type: plan.effects for event_type, plan in settings.plans.items()}
        project = settings.service_projects().get(settings.stripe.service, DEFAULT_PROJECT)
        reconciler = Reconciler(store, settings.stripe, project, plans)
        check = None if dry_run else DeclaredCheck(store, Journal(store), plans)
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("reading Stripe's events"),
                BarColumn(bar_width=None),
                TextColumn("{task.completed} events"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task("events", total=None)
                summary = reconcile(
                    reconciler,
                    span,
                    dry_run=dry_run,
                    check=check,
                    on_page=lambda n: progress.advance(task, n),
                )
        except (StripeRefused, StripeUnavailable) as exc:
            console.print(f"[red]fulfillwatch reconcile: {escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        finally:
            store.close()
        _print(console, summary, since, dry_run)


def _print(console: Console, summary: ReconcileSummary, since: str, dry_run: bool) -> None:
    passed = sum(1 for event in summary.unreported if event.grace_passed)
    console.print(
        f"[bold]Stripe events of the last {escape(since)}[/bold]{' (dry run: nothing stored)' if dry_run else ''}"
    )
    console.print(f"  seen            {summary.seen}")
    console.print(f"  with receipts   {summary.with_receipts}")
    console.print(
        f"  without         {len(summary.unreported)}  ({passed} past their grace: not_received; "
        f"{len(summary.unreported) - passed} still within it)"
    )
    if not dry_run:
        console.print(f"  recorded        {summary.recorded} new event(s), {summary.opened} incident(s) opened")
    if not summary.unreported:
        return
    table = Table(
        "stripe event", "type", "account", "created (UTC)", "grace", "Stripe's delivery", box=None, pad_edge=False
    )
    for event in summary.unreported[:_LISTED]:
        table.add_row(
            escape(event.stripe_event_id),
            escape(event.event_type),
            escape(event.account) or "-",
            event.created.strftime("%Y-%m-%d %H:%M:%S"),
            "passed" if event.grace_passed else "within",
            "failed" if event.delivery_failed else "no failure reported",
        )
    console.print(table)
    if len(summary.unreported) > _LISTED:
        console.print(f"  … and {len(summary.unreported) - _LISTED} more")
