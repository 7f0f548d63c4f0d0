"""Detection: the engine that turns stored signals into incident transitions.

* :mod:`.engine` — the periodic, incremental evaluation (one tick per interval);
* :mod:`.window` — what a window touched and which of it needs deciding (the live set);
* :mod:`.open_set` — the expectations waiting for a result, in the store and in the engine's memory;
* :mod:`.expectations` — the SQL that summarises the expectations to decide;
* :mod:`.declared` — expectations declared by Stripe's record or a plan (``not_received``,
  ``effect_missing``), checked on their own schedule;
* :mod:`.silence` — services that stop recording receipts (``signals_stopped``);
* :mod:`.arrived` — receipts stored since a position (what plans and the silence watch follow);
* :mod:`.identities` — incident ids of identities known in Python (derived in SQL);
* :mod:`.engine_state` — watermarks, heartbeat and followers' positions in the store;
* :mod:`.lease` — one evaluating engine per store when several run (split services).
"""

__all__ = [
    "arrived",
    "declared",
    "engine",
    "engine_state",
    "expectations",
    "identities",
    "lease",
    "open_set",
    "silence",
    "window",
]
