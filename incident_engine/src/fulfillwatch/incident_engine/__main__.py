"""``python -m fulfillwatch.incident_engine`` runs the ``fulfillwatch`` command."""

from fulfillwatch.incident_engine.cli import main

main()
