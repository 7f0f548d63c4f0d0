"""The identity of an expectation: which project, which Stripe event, which business effect.

An *expectation* is one ``(project, stripe event id, effect)``: one event may need several
effects (grant credits, update seats), and the same event id seen by two projects is two
expectations — one project's signals can never settle another's.

The effect has two forms, converted here and nowhere else:

* **stored** — ``""`` means "the event's own fulfillment" (no effect named, or one named like the
  event type). A worker often knows only the event id, and its result must meet the receipt
  that named no effect;
* **display** — what people read: the effect, or the event type when it is the event's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ingest_auth import DEFAULT_PROJECT


def display_effect_sql(effect: str = "effect", event_type: str = "event_type") -> str:
    """The display form of a stored effect column next to an event type column, in SQL."""
    return f"if({effect} = '', {event_type}, {effect})"


def stored_effect(effect: str | None, event_type: str) -> str:
    """The stored form of an effect named by a signal, a person or a filter."""
    return "" if not effect or effect == event_type else effect


def display_effect(effect: str, event_type: str) -> str:
    """The display form of a stored effect."""
    return effect or event_type


@dataclass(frozen=True, slots=True)
class ExpectationIdentity:
    """Which expectation: its key (``project``, ``stripe_event_id``, stored ``effect``) and the
    two facts every view of it shows (the event type, and the service whose signals it has)."""

    project: str
    stripe_event_id: str
    effect: str  # stored form
    event_type: str = ""
    service: str = ""

    @property
    def display_effect(self) -> str:
        """The effect as people read it."""
        return display_effect(self.effect, self.event_type)

    @classmethod
    def of(
        cls,
        stripe_event_id: str,
        effect: str | None,
        event_type: str,
        service: str = "",
        project: str = DEFAULT_PROJECT,
    ) -> ExpectationIdentity:
        """An identity from an effect in either form."""
        return cls(project, stripe_event_id, stored_effect(effect, event_type), event_type, service)
