"""Incidents: the append-only log, what people do to incidents, and what is read from it.

* :mod:`.incident_log` — appending transitions (the journal) and the order of log rows;
* :mod:`.lifecycle` — acknowledge, ignore, note, reprocess;
* :mod:`.bulk` — bulk reprocess jobs;
* :mod:`.queries` — incident lists, details and signals for the API;
* :mod:`.timeline` — an incident's story on one time axis;
* :mod:`.stats` — the overview's figures.
"""
