"""The incident model: pure types and rules, no I/O.

* :mod:`.status` — an expectation's summary and its verdict at an instant (:func:`~.status.assess`);
* :mod:`.transitions` — incident states, the rows of the incident log, and
  :func:`~.transitions.plan`, which turns a verdict into the rows to append.

Everything else in the engine builds on these; they import nothing from it.
"""

__all__ = ["status", "transitions"]
