"""``python -m fulfillwatch.dashboard`` runs the dashboard."""

from .cli import main

main()
