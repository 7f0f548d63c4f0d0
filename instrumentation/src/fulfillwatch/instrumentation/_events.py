"""Reading the identity and key fields of a Stripe event, whatever shape the app holds it in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import vocabulary as v

#: Values Fulfillwatch sets as span attributes.
AttributeValue = str | bool | int | float


class EventInfo(NamedTuple):
    """What Fulfillwatch records about one Stripe event (a tuple: built for every span)."""

    id: str
    type: str
    livemode: bool | None = None
    account: str | None = None
    customer: str | None = None
    amount: int | None = None
    currency: str | None = None
    created: int | None = None

    def span_attributes(self) -> dict[str, AttributeValue]:
        """The event's attributes as set on receipt and result spans (unknown fields omitted)."""
        attributes: dict[str, AttributeValue] = {v.STRIPE_EVENT_ID: self.id}
        # Plain ifs: this runs for every span, and most fields are absent on results.
        if self.type:
            attributes[v.STRIPE_EVENT_TYPE] = self.type
        if self.livemode is not None:
            attributes[v.STRIPE_LIVEMODE] = self.livemode
        if self.account is not None:
            attributes[v.STRIPE_ACCOUNT] = self.account
        if self.customer is not None:
            attributes[v.STRIPE_CUSTOMER] = self.customer
        if self.amount is not None:
            attributes[v.STRIPE_AMOUNT] = self.amount
        if self.currency is not None:
            attributes[v.STRIPE_CURRENCY] = self.currency
        if self.created is not None:
            attributes[v.STRIPE_EVENT_CREATED] = self.created
        return attributes


def _as_mapping(event: object) -> Mapping[str, Any] | None:
    if type(event) is dict or isinstance(event, Mapping):
        return event
    # stripe-python's StripeObject (stripe.Event) is no longer a dict; to_dict() is its export.
    to_dict = getattr(event, "to_dict", None)
    if callable(to_dict):
        exported = to_dict()
        if isinstance(exported, Mapping):
            return exported
    return None


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):  # an expanded object: keep its id
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def _int_or_none(value: object) -> int | None:
    if type(value) is int:  # the common case; bool is an int subclass and is excluded
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _amount(obj: Mapping[str, Any]) -> int | None:
    # Checkout sessions carry amount_total, invoices amount_paid, payment intents amount.
    for key in ("amount_total", "amount_paid", "amount_received", "amount"):
        amount = _int_or_none(obj.get(key))
        if amount is not None:
            return amount
    return None


def event_info(event: object, event_type: str | None = None) -> EventInfo:
    """Extract an :class:`EventInfo` from a ``stripe.Event``, a webhook's parsed JSON or an id.

    Raises ``TypeError``/``ValueError`` naming what is missing; callers decide whether that may
    reach the application.
    """
    if isinstance(event, str):
        if not event:
            raise ValueError("the Stripe event id is empty")
        return EventInfo(id=event, type=event_type or "")
    # Every webhook goes through here: plain dicts (the common case) skip the ABC checks.
    data = event if type(event) is dict else _as_mapping(event)
    if data is None:
        raise TypeError(
            "event must be a stripe.Event, the webhook's parsed JSON (a dict) or an event id "
            f"string, not {type(event).__name__}"
        )
    event_id = data.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("the Stripe event has no 'id'")
    found_type = data.get("type")
    resolved_type = event_type or (found_type if isinstance(found_type, str) else "")
    livemode = data.get("livemode")
    payload = data.get("data")
    obj = payload.get("object") if type(payload) is dict or isinstance(payload, Mapping) else None
    if type(obj) is not dict and not isinstance(obj, Mapping):
        obj = {}
    currency = obj.get("currency")
    return EventInfo(
        id=event_id,
        type=resolved_type,
        livemode=livemode if isinstance(livemode, bool) else None,
        account=_str_or_none(data.get("account")),
        customer=_str_or_none(obj.get("customer")),
        amount=_amount(obj),
        currency=currency if isinstance(currency, str) and currency else None,
        created=_int_or_none(data.get("created")),
    )
