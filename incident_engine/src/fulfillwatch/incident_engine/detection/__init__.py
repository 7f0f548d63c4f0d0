"""Detection: the engine that turns stored signals into incident transitions.

* :mod:`.engine` — the periodic, incremental evaluation (one tick per interval);
* :mod:`.window` — what a window touched and which of it needs deciding (the live set);
* :mod:`.expectations` — the SQL that summarises the expectations to decide;
* :mod:`.engine_state` — watermarks, heartbeat and followers' positions in the store;
* :mod:`.lease` — one evaluating engine per store when several run (split services).
"""

__all__ = ["engine", "engine_state", "expectations", "lease", "window"]
