"""Proposed merges (never silent): signs in new messages that two contacts are one customer.

Runs after each stored batch (engine.sync), on the new inbound messages:

- a phone number in the signature of a mail (the last lines of the customer's own text, quotes cut
  off; after a "-- " line when there is one), read with phonenumbers in the configured default
  region and normalised to E.164, that is the SMS/WhatsApp identity of another contact;
- a Telegram user who shared their own phone number (the connector's extra["shared_phone"]) that
  another contact writes SMS/WhatsApp from;
- a mail whose Reply-To is the address another contact writes from.

An address that no contact holds yet is remembered as a hint of the contact whose message showed
it; the first message from that address later (an SMS from a number first seen in a signature)
proposes the merge then. The store proposes a pair at most once and never one a person rejected;
nothing here merges anything. A message that cannot be read costs only its own proposals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from agent_tui.limits import ANALYSIS_CHARS, bounded
from agent_tui.model import Channel, Direction, Message
from agent_tui.store import StoreBackend
from agent_tui.store.sql import identity_kind, normalise_address

log = logging.getLogger(__name__)

DEFAULT_REGION = "DE"
SIGNATURE_LINES = 8          # without a "-- " line: the customer's last lines count as signature
MAX_SIGNATURE_PHONES = 3     # a mail listing more numbers is a price list, not a signature

# Where the customer's own text ends and a quote of an earlier mail begins.
_QUOTE_START = re.compile(
    r"^\s*(>|-{2,}\s*(original message|ursprüngliche nachricht|forwarded message|"
    r"weitergeleitete nachricht)|_{8,}\s*$|"
    r"(on|am) .{4,200}(wrote|schrieb)( .{0,200})?:\s*$)", re.IGNORECASE)

_CHANNEL_LABEL = {Channel.SMS: "an SMS", Channel.WHATSAPP: "a WhatsApp message",
                  Channel.EMAIL: "a mail", Channel.TELEGRAM: "a Telegram message"}


@dataclass(frozen=True, slots=True)
class Sign:
    """An address one message gives for its sender, and why it counts."""

    kind: str          # identity kind: email | phone | telegram
    address: str       # normalised like the identities (E.164, lower-case mail)
    reason: str


def signature_block(text: str) -> str:
    """The lines of a mail that may hold the sender's signature: the customer's own text (up to
    the first quote or attribution line), after its last "-- " line, else its last lines."""
    own: list[str] = []
    for line in bounded(text, 4 * ANALYSIS_CHARS).splitlines():
        if _QUOTE_START.match(line):
            break
        own.append(line)
    for index in range(len(own) - 1, -1, -1):
        if own[index].rstrip() == "--":
            return "\n".join(own[index + 1:])
    lines = [line for line in own if line.strip()]
    return "\n".join(lines[-SIGNATURE_LINES:])


def signature_phones(text: str, region: str = DEFAULT_REGION) -> list[str]:
    """E.164 numbers in the signature of a mail's text, in order, without repeats."""
    # Imported here: `run --once` starts fast without it.
    import phonenumbers

    block = signature_block(text)
    if not block:
        return []
    found: list[str] = []
    matcher = phonenumbers.PhoneNumberMatcher(block, region.upper(),
                                              leniency=phonenumbers.Leniency.VALID)
    for match in matcher:
        number = phonenumbers.format_number(match.number,
                                            phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
    return found if len(found) <= MAX_SIGNATURE_PHONES else []


def signs(message: Message, extra: dict[str, object],
          region: str = DEFAULT_REGION) -> Iterator[Sign]:
    """What one inbound message says about other addresses of its sender."""
    if message.channel is Channel.EMAIL:
        if message.auto.any:    # bounces, lists and robots quote other people's details
            return
        for number in signature_phones(message.text, region):
            yield Sign("phone", number, f"phone {number} in a mail signature")
        reply_to = extra.get("reply_to")
        if isinstance(reply_to, str) and reply_to:
            address = normalise_address(Channel.EMAIL, reply_to)
            yield Sign("email", address, f"Reply-To {address}")
    elif message.channel is Channel.TELEGRAM:
        shared = extra.get("shared_phone")
        if isinstance(shared, str) and shared.startswith("+"):
            yield Sign("phone", shared, f"Telegram user shared phone {shared}")


def _propose(store: StoreBackend, message: Message, region: str) -> int:
    kind = identity_kind(message.channel)
    sender = store.identity_owner(kind, normalise_address(message.channel, message.sender))
    if sender is None:
        return 0
    made = 0
    for sign in signs(message, store.get_message_extra(message.id), region):
        owner = store.identity_owner(sign.kind, sign.address)
        if owner is None:
            store.add_contact_hint(sender, sign.kind, sign.address, sign.reason,
                                   message_id=message.id)
        elif owner != sender and store.propose_merge(sender, owner, sign.reason,
                                                     message_id=message.id) is not None:
            made += 1
    # The other direction: an earlier message named the address this one comes from.
    address = normalise_address(message.channel, message.sender)
    for hint in store.contact_hints(kind, address):
        if hint.contact_id == sender:
            continue
        reason = f"{hint.reason}; later {_CHANNEL_LABEL[message.channel]} from it"
        if store.propose_merge(hint.contact_id, sender, reason,
                               message_id=hint.message_id) is not None:
            made += 1
    return made


def propose_merges(store: StoreBackend, message_ids: list[int], *,
                   region: str = DEFAULT_REGION) -> int:
    """Look at new messages for signs that two contacts are one customer; returns how many
    merges were proposed. Never merges: a person accepts (`contact merge`) or rejects."""
    made = 0
    for message_id in message_ids:
        try:
            message = store.get_message(message_id)
            if message.direction is Direction.INBOUND and message.sender:
                made += _propose(store, message, region)
        except Exception:   # one odd message costs its own proposals, never the sync
            log.exception("merge proposals for message %s failed", message_id)
    if made:
        log.info("%d merge(s) proposed", made)
    return made
