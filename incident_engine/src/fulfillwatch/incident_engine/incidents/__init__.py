"""Incidents: the append-only log, what people do to incidents, and what is read from it.

* :mod:`.incident_log` — appending transitions (the journal) and the order of log rows;
* :mod:`.lifecycle` — acknowledge, ignore, note, reprocess;
* :mod:`.bulk` — bulk reprocess jobs;
* :mod:`.log_reads` — every read of the incident log (lists, details, heads, dispatch and
  alert progress, the feed);
* :mod:`.active_incidents` — keeping ``fw_active_incidents`` (what listings of live incidents
  read) in step with the log;
* :mod:`.signal_reads` — an event's stored signals;
* :mod:`.records` — the typed rows those reads return; :mod:`.errors` — the domain's errors;
* :mod:`.timeline` — an incident's story on one time axis;
* :mod:`.stats` — the overview's figures.
"""

__all__ = [
    "active_incidents",
    "bulk",
    "errors",
    "incident_log",
    "lifecycle",
    "log_reads",
    "records",
    "signal_reads",
    "stats",
    "timeline",
]
