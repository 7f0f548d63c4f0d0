"""Detection: the engine that turns stored signals into incident transitions.

* :mod:`.engine` — the periodic, incremental evaluation (one tick per interval);
* :mod:`.expectations` — the SQL that finds what a tick must look at and summarises it;
* :mod:`.engine_state` — watermarks, heartbeat and importer positions in the store;
* :mod:`.lease` — one evaluating engine per store when several run (split services).
"""

__all__ = ["engine", "engine_state", "expectations", "lease"]
