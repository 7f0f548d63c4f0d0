"""``python -m fulfillwatch.incident_engine`` runs the ``fulfillwatch`` command."""

from .cli import main

main()
