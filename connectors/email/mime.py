"""Mail parsing and composition: raw bytes -> InboundMessage, OutboundMessage -> EmailMessage.

Real-world mail lies about its charset, breaks its encodings and nests without end, so every decode
here is guarded: `parse_message` never raises, and whatever went wrong becomes a short defect note
on a best-effort message (DESIGN.md invariant 7). Everything shown to a person passes through
agent_tui.sanitize (invariants 3 and 4).

The structure comes from the stdlib parser with `policy.default`; header values are taken raw
(`raw_items`) and decoded here, which is both more forgiving (undeclared 8-bit, split encoded words)
and faster than the header registry for the few headers we need.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import errors as email_errors
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import (
    collapse_rfc2231_value,
    format_datetime,
    getaddresses,
    make_msgid,
    parsedate_to_datetime,
)

from agent_tui.model import AttachmentInfo, AutoFlags, Channel, Direction, InboundMessage
from agent_tui.sanitize import clean_line, clean_text, safe_filename, safe_mime_type
from agent_tui.subjects import reply_subject
from connectors.base import OutboundMessage
from connectors.email.html_text import html_to_text
from connectors.email.mimesplit import parse_structure, raw_payload

__all__ = [
    "attachment_bytes",
    "build_reply",
    "content_hash",
    "decode_bytes",
    "decode_header_value",
    "new_message_id",
    "parse_message",
]

# Deeper MIME trees are not walked (a defect is noted): real mail stays far below this, and the
# stdlib parser's cost grows with depth x lines.
MAX_DEPTH = 32
# More multipart boundaries than this and the body is not parsed as MIME at all (header-only parse).
MAX_BOUNDARIES = 200
MAX_DEFECTS = 20
# A Date this far after INTERNALDATE (or now) is a broken clock; it would jump the queue.
FUTURE_TOLERANCE = timedelta(days=1)

# ---- charsets -----------------------------------------------------------------------------------

# Labels that in practice mean "whatever Windows wrote" (WHATWG maps them to windows-1252 too).
_CP1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "iso_8859-1",
                            "us-ascii", "ascii", "ansi_x3.4-1968", "cp819", "ibm819", "8859-1"})
# Legacy East Asian labels whose Microsoft supersets are what mailers actually produce.
_SUPERSETS = {"ks_c_5601-1987": "cp949", "euc-kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
              "shift_jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
              "iso-2022-jp": "iso2022_jp_ext", "big5": "big5hkscs"}
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def _codec_for(label: str | None) -> str | None:
    """Python codec name for a MIME charset label; None when absent, unknown, or ASCII/Latin-1."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = name.split("*", 1)[0]                    # RFC 2231 language suffix
    if not name or name in _CP1252_LABELS:
        return None
    name = _SUPERSETS.get(name, name)
    try:
        codec = codecs.lookup(name).name
        "".encode(codec)            # rot13, base64, zlib, "undefined": codecs, but no charsets
    except (LookupError, ValueError):   # ValueError: a NUL in the label; UnicodeError is one too
        return None
    return codec


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text for `data` labelled `charset`, never raising.

    Undeclared, ASCII- or Latin-1-labelled 8-bit bytes decode as UTF-8 when valid, else as cp1252
    (a superset of Latin-1 that differs only in 0x80-0x9f, where Latin-1 has invisible controls);
    an unknown label falls back the same way. UTF-8 with a few broken bytes keeps its UTF-8.
    """
    codec = _codec_for(charset)
    if codec is None:
        return _utf8_or_cp1252(data)
    try:
        return data.decode(codec)
    except UnicodeError:            # also idna's and punycode's, which are no UnicodeDecodeError
        pass
    if codec == "utf-8":
        if _UTF8_SEQUENCE.search(data):
            return data.decode("utf-8", errors="replace")
        return data.decode("cp1252", errors="replace")
    if _decodes_mostly(data, codec):
        return data.decode(codec, errors="replace")
    return _utf8_or_cp1252(data)


def _decodes_mostly(data: bytes, codec: str) -> bool:
    try:
        text = data.decode(codec, errors="replace")
    except (LookupError, UnicodeError):
        return False
    return text.count("\ufffd") * 20 < max(1, len(text))


def _utf8_or_cp1252(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # The five bytes cp1252 leaves undefined become U+FFFD rather than an error.
        return data.decode("cp1252", errors="replace")


def _surrogates_to_bytes(value: str) -> bytes:
    """The parser keeps undeclared 8-bit header bytes as surrogate escapes; get the bytes back."""
    return value.encode("ascii", "surrogateescape") if not value.isascii() else value.encode()


def _header_text(value: str, charset_hint: str | None = None) -> str:
    """A raw header value (maybe with 8-bit bytes as surrogates) as text, unfolded.

    Raw 8-bit headers are UTF-8 (RFC 6532) when valid, else in the charset the message body
    declares (`charset_hint`; what old mailers did), else cp1252. Raw ISO-2022-JP is 7-bit.
    """
    if not value.isascii():
        # A str that holds real non-ASCII (not surrogates) cannot go back to bytes: keep it.
        with contextlib.suppress(UnicodeEncodeError):
            data = _surrogates_to_bytes(value)
            try:
                value = data.decode("utf-8")
            except UnicodeDecodeError:
                value = decode_bytes(data, charset_hint)
    elif "\x1b$" in value or "\x1b(" in value:
        with contextlib.suppress(UnicodeDecodeError):
            value = value.encode("ascii").decode("iso2022_jp_ext")
    return _FOLD.sub(r"\1", value)


_FOLD = re.compile(r"\r?\n([ \t])")

# ---- RFC 2047 -----------------------------------------------------------------------------------

# Lenient: broken mailers put spaces inside Q words; no encoded word spans a line.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\n]*?)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_b(text: str) -> bytes:
    data = _BASE64_JUNK.sub(b"", text.encode("ascii", "ignore"))
    data = data[: len(data) - 1] if len(data) % 4 == 1 else data   # a lone sextet is no byte
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _decode_q(text: str) -> bytes:
    data = text.replace("_", " ").encode("ascii", "replace")
    return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_header_value(value: str, charset_hint: str | None = None) -> str:
    """Decode RFC 2047 encoded words, also split ones (a multi-byte character cut in two words).

    Adjacent encoded words in the same charset are joined as bytes before decoding; whitespace
    between encoded words is dropped (RFC 2047 section 6.2). Not sanitised: callers clean_line it.
    """
    value = _header_text(value, charset_hint)
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset = ""
    position = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode_bytes(bytes(pending), pending_charset))
            pending.clear()
        pending_charset = ""

    for match in _ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        if between and not (pending and between.isspace()):
            flush()
            out.append(between)
        charset, encoding, encoded = match.groups()
        charset = charset.split("*", 1)[0].lower()
        data = _decode_b(encoded) if encoding in "bB" else _decode_q(encoded)
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.extend(data)
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out)


# ---- addresses, ids, dates ----------------------------------------------------------------------

_MSG_ID = re.compile(r"<([^<>\s]+)>")
_MSG_ID_BAD = re.compile(r"[\s<>\x00-\x1f\x7f-\x9f]")   # C1 too: ids reach --json and replies


def _addresses(raw_values: list[str], charset_hint: str | None = None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; names decoded and sanitised."""
    pairs: list[tuple[str, str]] = []
    # Encoded words stand in as plain atoms while the address list is split: hostile or sloppy
    # ones carry "[", "," or quotes that would otherwise derail the address parser.
    words: list[str] = []

    def hide(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f"encodedword{len(words) - 1}x"

    def restore(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: words[int(m.group(1))], text) if words else text

    texts = [_ENCODED_WORD.sub(hide, _header_text(_address_list_head(v), charset_hint))
             for v in raw_values]
    try:
        found = _simple_addresses(texts) or getaddresses(texts)
    except RecursionError:      # the stdlib recurses once per "name:" group; hostile mail nests
        found = []              # thousands ("From:From:From:..."): no usable address there
    for name, address in found:
        address = clean_line(decode_header_value(restore(address))).lower()
        if not address or ("@" not in address and not name):
            continue
        name = clean_line(decode_header_value(restore(name), charset_hint)).strip("\"' ")
        pairs.append((name, address))
    return pairs


_PLACEHOLDER = re.compile(r"encodedword(\d+)x")
# Postfix cuts a mail's whole header at 100 kB (header_size_limit): a longer address list is
# hostile, and the stdlib parser grows faster than linearly on some (nested "name: <" groups).
MAX_ADDRESS_LIST = 100_000


def _address_list_head(value: str) -> str:
    """The value, or of a longer one the addresses before a comma within MAX_ADDRESS_LIST."""
    if len(value) <= MAX_ADDRESS_LIST:
        return value
    cut = value.rfind(",", 0, MAX_ADDRESS_LIST)
    return value[:cut] if cut > 0 else value[:MAX_ADDRESS_LIST]

# One address in one of its three everyday forms, where getaddresses' result is plain to see:
# `local@domain`, `<local@domain>`, `Some Name <local@domain>` or `"Some Name" <local@domain>`.
_ADDR_SPEC = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_ADDRESS = re.compile(
    rf"""[ \t]*(?:
        (?P<bare>{_ADDR_SPEC})
      | (?:"(?P<quoted>[^"\\\r\n]*)"[ \t]*|(?P<phrase>[^\s()<>@,:;."\[\]\\]+
            (?:[ \t]+[^\s()<>@,:;."\[\]\\]+)*)[ \t]*)?<(?P<angle>{_ADDR_SPEC})>
    )[ \t]*""", re.VERBOSE)


def _simple_addresses(texts: list[str]) -> list[tuple[str, str]] | None:
    """getaddresses(texts) when every text is one address in an everyday form, else None."""
    pairs = []
    for text in texts:
        match = _SIMPLE_ADDRESS.fullmatch(text)
        if match is None:
            return None
        bare, quoted, phrase, angle = match.group("bare", "quoted", "phrase", "angle")
        if bare:
            pairs.append(("", bare))
        elif quoted is not None:
            pairs.append((quoted, angle))
        else:
            pairs.append((" ".join(phrase.split()) if phrase else "", angle))
    return pairs


def _message_ids(value: str) -> list[str]:
    ids = _MSG_ID.findall(value)
    if not ids:
        # Bracket-less ids exist in the wild: take the tokens that look like one.
        ids = [token for token in value.split() if "@" in token]
    return [cleaned for i in ids if (cleaned := _MSG_ID_BAD.sub("", i))]


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(_header_text(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:                     # "-0000": UTC with no claim about local time
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


# ---- content hash ------------------------------------------------------------------------------

_TRANSPORT_HEADER = re.compile(rb"^(received|delivered-to|return-path|x-[^:]*):", re.IGNORECASE)


def content_hash(raw: bytes) -> str:
    """sha256 hex of the mail without the headers that each hop or mailbox adds (Received, X-*...).

    Line endings are normalised, so the copy an IMAP server returns (CRLF) and a Maildir copy (LF)
    hash the same.
    """
    data = raw.replace(b"\r\n", b"\n")
    end = data.find(b"\n\n")
    header, body = (data, b"") if end < 0 else (data[:end + 1], data[end + 2:])
    kept: list[bytes] = []
    dropping = False
    for line in header.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_TRANSPORT_HEADER.match(line))
        if not dropping:
            kept.append(line)
    digest = hashlib.sha256(b"\n".join(kept).rstrip(b"\n"))
    digest.update(b"\n\n")
    digest.update(body.rstrip())
    return digest.hexdigest()


# ---- MIME tree walk -----------------------------------------------------------------------------

@dataclass(slots=True)
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)     # sources, used for text when no plain part
    html_for_text: list[str] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    order: list[tuple[str, int]] = field(default_factory=list)  # ("plain"|"html", index) in order


def _children(part: Message) -> list[Message]:
    payload = raw_payload(part)
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _child_path(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _decoded_payload(part: Message) -> bytes:
    """The part's body bytes with its transfer encoding undone, leniently.

    Base64 goes through binascii (which skips junk characters) and, when the padding or length
    is broken, through a cleanup that keeps every complete group; everything else is the stdlib's.
    """
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = raw_payload(part)
    if cte == "base64" and isinstance(payload, str):
        data = _surrogates_to_bytes(payload)
        try:
            return binascii.a2b_base64(data)
        except binascii.Error:
            part.defects.append(email_errors.InvalidBase64PaddingDefect())
            return _decode_b(payload)
    decoded = part.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n"


def _payload_size(part: Message) -> int:
    """len(_decoded_payload(part)), without decoding clean base64 (an attachment's size).

    Only base64 that binascii decodes without complaint is measured: alphabet and line breaks,
    at most two "=" at the very end, a multiple of four characters. Anything else is decoded.
    """
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    payload = raw_payload(part)
    if cte == "base64" and isinstance(payload, str) and payload.isascii():
        data = payload.encode("ascii")
        padding = data.translate(None, _BASE64_ALPHABET)
        if padding in (b"", b"=", b"==") and data.rstrip(b"\r\n").endswith(padding):
            characters = len(data.translate(None, b"\r\n"))
            if characters % 4 == 0:
                return characters // 4 * 3 - len(padding)
    return len(_decoded_payload(part))


def _part_text(part: Message) -> str:
    data = _decoded_payload(part)
    charset = part.get_param("charset")
    return decode_bytes(data, charset if isinstance(charset, str) else None)


def _is_attachment(part: Message) -> bool:
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return True
    if disposition == "inline":
        return False
    if disposition is None and "name" not in str(part.get("content-type", "")).lower():
        return False                # no parameter get_filename() could find
    return bool(part.get_filename())


def _raw_filename(part: Message) -> str:
    """The filename (or name) parameter, with raw 8-bit bytes decoded rather than replaced.

    compat32 turns undeclared 8-bit header bytes into U+FFFD before parameters are split, so a
    raw UTF-8 name is re-read from the raw header text.
    """
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        for name, value in part.raw_items():
            if name.lower() == header and not value.isascii():
                probe = Message()
                probe[header] = _header_text(value)
                found = probe.get_filename() if param == "filename" else probe.get_param(param)
                if found:
                    return collapse_rfc2231_value(found)
    found = part.get_filename() or part.get_param("name")
    return collapse_rfc2231_value(found) if found else ""


def _source_size(part: Message) -> int:
    """About the size of a part's source, without serialising it again (that costs a generator
    run per forwarded mail): headers plus payload, recursively."""
    size = sum(len(name) + len(value) + 3 for name, value in part.raw_items()) + 1
    payload = raw_payload(part)
    if isinstance(payload, list):
        boundary = len(part.get_boundary() or "") + 5
        return size + sum(_source_size(child) + boundary for child in payload
                          if isinstance(child, Message))
    return size + (len(payload) if isinstance(payload, str) else 0)


def _attachment_info(part: Message, path: str, content_type: str,
                     notes: list[str]) -> AttachmentInfo:
    shown_type = safe_mime_type(content_type)
    raw_name = _raw_filename(part)
    name = clean_line(decode_header_value(raw_name))
    if not name:
        if content_type == "message/rfc822":
            inner = _children(part)
            subject = decode_header_value(str(inner[0].get("subject", ""))) if inner else ""
            name = (clean_line(subject) or "forwarded message") + ".eml"
        else:
            name = f"part-{path}{mimetypes.guess_extension(shown_type) or '.bin'}"
    size = 0
    try:
        if part.is_multipart():
            size = sum(_source_size(child) for child in _children(part))
        else:
            size = _payload_size(part)
    except Exception as exc:  # a broken part still gets listed
        _note(notes, f"part {path}: size unknown ({type(exc).__name__})")
    return AttachmentInfo(name=safe_filename(name, fallback=f"part-{path}"),
                          content_type=shown_type, size=size, ref=path)


def _walk(part: Message, path: str, depth: int, body: _Body, in_body: bool) -> None:
    """Collect body texts and attachments; `path` is the IMAP part number ("" for the top)."""
    own_path = path or "1"
    if depth > MAX_DEPTH:
        _note(body.defects, f"MIME nesting deeper than {MAX_DEPTH} levels: inner parts skipped")
        return
    content_type = part.get_content_type()
    try:
        _walk_part(part, path, own_path, content_type, depth, body, in_body)
    finally:
        # After the walk: decoding the payload is what finds broken base64.
        for defect in part.defects:
            _note(body.defects, f"part {own_path}: {_defect_text(defect)}")


def _walk_part(part: Message, path: str, own_path: str, content_type: str, depth: int,
               body: _Body, in_body: bool) -> None:
    if part.get_content_maintype() == "multipart" and not part.is_multipart():
        _walk_unsplit_multipart(part, path, depth, body)
        return
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        children = _children(part)
        if content_type == "multipart/alternative" and in_body:
            chosen = _choose_alternative(children)
            for index, child in enumerate(children, 1):
                _walk(child, _child_path(path, index), depth + 1, body, in_body=child is chosen)
            return
        for index, child in enumerate(children, 1):
            child_in_body = in_body and (content_type != "multipart/related" or index == 1
                                         or child.get_content_maintype() == "text")
            _walk(child, _child_path(path, index), depth + 1, body, in_body=child_in_body)
        return
    if content_type in ("text/plain", "text/html") and not _is_attachment(part):
        if in_body or (content_type == "text/html" and not body.html):
            try:
                text = _part_text(part)
            except Exception as exc:  # keep going with the other parts
                _note(body.defects, f"part {own_path}: undecodable text ({type(exc).__name__})")
                return
            if content_type == "text/plain" and in_body:
                body.order.append(("plain", len(body.plain)))
                body.plain.append(text)
            elif content_type == "text/html":
                if in_body:
                    body.order.append(("html", len(body.html_for_text)))
                    body.html_for_text.append(text)
                body.html.append(text)
            return
        if not in_body:
            return                                 # the alternative we did not choose
    body.attachments.append(_attachment_info(part, own_path, content_type, body.defects))


_BOUNDARY_LINE = re.compile(r"^--([^\s][^\r\n]{0,200}?)[ \t]*\r?$", re.MULTILINE)


def _walk_unsplit_multipart(part: Message, path: str, depth: int, body: _Body) -> None:
    """A multipart whose boundary never showed up: try the first boundary-like line, else text."""
    payload = raw_payload(part)
    if not isinstance(payload, str) or not payload.strip():
        return
    recovered = _recover_boundary(part)
    if recovered is not None:
        _note(body.defects, f"part {path or '1'}: boundary recovered from the body")
        _walk(recovered, path, depth + 1, body, in_body=True)
        return
    body.order.append(("plain", len(body.plain)))
    body.plain.append(decode_bytes(_surrogates_to_bytes(payload), None))


def _recover_boundary(part: Message) -> Message | None:
    """A multipart whose boundary never showed up, split again at the first boundary-like line of
    its body; None when there is none or it splits nothing. The walk and attachment_bytes both
    use it, so the part numbers of what it finds lead back to the same parts."""
    payload = raw_payload(part)
    if part.get_content_maintype() != "multipart" or part.is_multipart() \
            or not isinstance(payload, str):
        return None
    found = _BOUNDARY_LINE.search(payload)
    if not found or found.group(1) == part.get_boundary():
        return None
    boundary = found.group(1).replace('"', "")
    header = f'Content-Type: {part.get_content_type()}; boundary="{boundary}"\n\n'
    recovered = _PARSER.parsebytes(header.encode("ascii", "replace")
                                   + _surrogates_to_bytes(payload))
    return recovered if recovered.is_multipart() else None


def _choose_alternative(children: list[Message]) -> Message | None:
    """The plain-text alternative when there is one (also inside a nested multipart), else HTML."""
    fallback: Message | None = None
    for child in children:
        kind = child.get_content_type()
        if kind == "text/plain" or (child.is_multipart()
                                    and any(p.get_content_type() == "text/plain"
                                            for p in _children(child))):
            return child
        if fallback is None and (kind == "text/html" or child.is_multipart()):
            fallback = child
    return fallback or (children[0] if children else None)


_DEFECT_TEXT = {
    "StartBoundaryNotFoundDefect": "start boundary not found",
    "CloseBoundaryNotFoundDefect": "missing closing boundary",
    "MultipartInvariantViolationDefect": "multipart without parts",
    "InvalidBase64PaddingDefect": "broken base64 (padding)",
    "InvalidBase64CharactersDefect": "broken base64 (invalid characters)",
    "InvalidBase64LengthDefect": "broken base64 (length)",
    "MissingHeaderBodySeparatorDefect": "missing blank line after headers",
    "NoBoundaryInMultipartDefect": "multipart without boundary",
    "FirstHeaderLineIsContinuationDefect": "first header line is a continuation",
    "MisplacedEnvelopeHeaderDefect": "misplaced envelope header",
    "InvalidMultipartContentTransferEncodingDefect": "invalid transfer encoding on multipart",
    "UndecodableBytesDefect": "undecodable bytes",
}


def _defect_text(defect: object) -> str:
    name = type(defect).__name__
    return _DEFECT_TEXT.get(name, name)


def _note(notes: list[str], text: str) -> None:
    text = clean_line(text)[:200]    # notes quote the sender's headers and exceptions about them
    if text not in notes and len(notes) < MAX_DEFECTS:
        notes.append(text)


# ---- auto flags ---------------------------------------------------------------------------------

_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")


def _auto_flags(headers: dict[str, list[str]], content_type: str, sender: str) -> AutoFlags:
    def first(name: str) -> str:
        values = headers.get(name)
        return _header_text(values[0]).strip().lower() if values else ""

    auto_submitted = first("auto-submitted")
    precedence = first("precedence")
    return_path = headers.get("return-path")
    local_part = sender.split("@", 1)[0]
    report_type = content_type in ("multipart/report", "message/delivery-status")
    return AutoFlags(
        auto_submitted=(bool(auto_submitted) and auto_submitted.split(";")[0].strip() != "no")
        or any(name in headers for name in ("x-autoreply", "x-autorespond", "x-loop",
                                            "x-auto-response-suppress")),
        bulk=precedence in ("bulk", "junk", "auto_reply"),
        list_mail=precedence == "list" or "list-id" in headers or "list-unsubscribe" in headers,
        bounce=report_type or local_part in _BOUNCE_SENDERS,
        null_sender=bool(return_path) and any(
            _header_text(v).strip() in ("<>", "< >") for v in return_path or []),
    )


# ---- parse_message ------------------------------------------------------------------------------

# compat32 for the structure: policy.default's header registry cuts an unquoted boundary at its
# first "=" (`boundary=----=_NextPart_...`, common from Outlook Express), losing every part.
# Headers are decoded here, not by the policy, so the policy only decides how parameters parse.
_PARSER = BytesParser(policy=policy.compat32)
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_BOUNDARY_PARAM = re.compile(rb"boundary\s*=", re.IGNORECASE)


def parse_message(raw: bytes, *, fallback_date: datetime | None = None) -> InboundMessage:
    """Parse one mail. Never raises: what went wrong is listed in `defects`."""
    defects: list[str] = []
    try:
        return _parse(raw, fallback_date, defects)
    except Exception as exc:  # a broken mail must never stop a sync (invariant 7)
        _note(defects, f"parse failed: {type(exc).__name__}: {exc}")
    try:
        return _parse(raw, fallback_date, defects, headers_only=True)
    except Exception as exc:
        _note(defects, f"header parse failed: {type(exc).__name__}: {exc}")
    digest = hashlib.sha256(raw).hexdigest()
    return InboundMessage(
        channel=Channel.EMAIL, provider_id=f"hash:{digest}", direction=Direction.INBOUND,
        sender="", sender_name="", recipients=[], sent_at=_fallback_time(fallback_date),
        subject="", text=clean_text(_utf8_or_cp1252(raw)), defects=defects, content_hash=digest,
        raw=raw)


def _fallback_time(fallback_date: datetime | None) -> datetime:
    if fallback_date is None:
        return datetime.now(UTC)
    if fallback_date.tzinfo is None:
        return fallback_date.replace(tzinfo=UTC)
    return fallback_date.astimezone(UTC)


def _parse(raw: bytes, fallback_date: datetime | None, defects: list[str], *,
           headers_only: bool = False) -> InboundMessage:
    # The regex only when there could be that many (a case-insensitive count is far cheaper).
    if (not headers_only and raw.lower().count(b"boundary") > MAX_BOUNDARIES
            and len(_BOUNDARY_PARAM.findall(raw)) > MAX_BOUNDARIES):
        _note(defects, f"more than {MAX_BOUNDARIES} MIME boundaries: body not parsed as MIME")
        headers_only = True
    message = (_HEADER_PARSER.parsebytes(raw) if headers_only
               else parse_structure(raw) or _PARSER.parsebytes(raw))
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        headers.setdefault(name.lower(), []).append(str(value))

    def first(name: str) -> str:
        values = headers.get(name)
        return values[0] if values else ""

    hash_hex = content_hash(raw)
    declared = message.get_param("charset")
    hint = declared if isinstance(declared, str) else None
    senders = (_addresses(headers.get("from", []), hint)
               or _addresses(headers.get("sender", []), hint))
    if not senders:
        _note(defects, "no usable From address")
    sender_name, sender = senders[0] if senders else ("", "")
    recipients = list(dict.fromkeys(address for _, address in
                                    _addresses(headers.get("to", []) + headers.get("cc", []))))
    reply_to_pairs = _addresses(headers.get("reply-to", []))
    reply_to = reply_to_pairs[0][1] if reply_to_pairs and reply_to_pairs[0][1] != sender else ""

    message_ids = _message_ids(_header_text(first("message-id")))
    provider_id = message_ids[0] if message_ids else f"hash:{hash_hex}"
    in_reply_to_ids = _message_ids(_header_text(first("in-reply-to")))
    references = list(dict.fromkeys(mid for value in headers.get("references", [])
                                    for mid in _message_ids(_header_text(value))))

    limit = _fallback_time(fallback_date)
    sent_at = _parse_date(first("date"))
    if sent_at is None:
        _note(defects, "missing or broken Date" if first("date") else "no Date header")
        sent_at = limit
    elif sent_at > limit + FUTURE_TOLERANCE:
        _note(defects, f"Date {sent_at.isoformat()} lies in the future")
        sent_at = limit

    body = _Body()
    if headers_only:
        payload = raw_payload(message)
        text = _utf8_or_cp1252(_surrogates_to_bytes(payload)) if isinstance(payload, str) else ""
    else:
        _walk(message, "", 0, body, in_body=True)
        text = _body_text(body, defects)
    for note in body.defects:
        _note(defects, note)
    for defect in message.defects if headers_only else ():
        _note(defects, _defect_text(defect))

    return InboundMessage(
        channel=Channel.EMAIL,
        provider_id=provider_id,
        direction=Direction.INBOUND,
        sender=sender,
        sender_name=sender_name,
        recipients=recipients,
        sent_at=sent_at,
        subject=clean_line(decode_header_value(first("subject"), hint)),
        text=clean_text(text).rstrip().lstrip("\n"),
        html=body.html[0] if body.html else "",
        attachments=body.attachments,
        auto=_auto_flags(headers, message.get_content_type(), sender),
        in_reply_to=in_reply_to_ids[0] if in_reply_to_ids else "",
        references=references,
        reply_to=reply_to,
        defects=defects,
        content_hash=hash_hex,
        raw=raw,
    )


def _body_text(body: _Body, defects: list[str]) -> str:
    pieces: list[str] = []
    for kind, index in body.order:
        if kind == "plain":
            pieces.append(body.plain[index])
            continue
        try:
            pieces.append(html_to_text(body.html_for_text[index]))
        except Exception as exc:  # html.parser on hostile input
            _note(defects, f"HTML body not convertible ({type(exc).__name__})")
    text = "\n\n".join(piece.strip("\r\n") for piece in pieces if piece.strip())
    if not text.strip() and body.html and not body.html_for_text:
        # An empty plain alternative next to a real HTML one (seen from Thunderbird).
        try:
            text = html_to_text(body.html[0])
        except Exception as exc:  # html.parser on hostile input
            _note(defects, f"HTML body not convertible ({type(exc).__name__})")
    return text


# ---- attachments on demand ----------------------------------------------------------------------

def _part_at(message: Message, ref: str) -> Message:
    part = _recover_boundary(message) or message
    steps = ref.split(".")
    if not part.is_multipart() and steps == ["1"]:
        return part
    for step in steps:
        if not step.isdigit():
            raise LookupError(f"invalid MIME part reference {ref!r}")
        part = _recover_boundary(part) or part
        if part.get_content_type() == "message/rfc822":
            inner = _children(part)
            if not inner:
                raise LookupError(f"no MIME part {ref!r} in this message")
            part = inner[0]
            if not part.is_multipart() and step == "1":
                continue
        children = _children(part)
        index = int(step)
        if not 1 <= index <= len(children):
            raise LookupError(f"no MIME part {ref!r} in this message")
        part = children[index - 1]
    return part


def attachment_bytes(raw: bytes, ref: str) -> bytes:
    """The decoded bytes of the part `ref` (an AttachmentInfo.ref); LookupError if there is none."""
    part = _part_at(_PARSER.parsebytes(raw), ref)
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        inner = _children(part)
        return inner[0].as_bytes() if inner and not part.is_multipart() else part.as_bytes()
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


# ---- composing replies ---------------------------------------------------------------------------

def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">") or "localhost"


def new_message_id(from_addr: str, domain: str | None = None) -> str:
    """A new Message-ID in the sending account's domain, without angle brackets."""
    return make_msgid(domain=domain or _domain_of(from_addr)).strip("<>")


def _bracketed(message_id: str) -> str:
    return f"<{message_id.strip().strip('<>')}>"


MAX_REFERENCES = 50


def build_reply(out: OutboundMessage, *, from_addr: str, from_name: str = "",
                domain: str | None = None) -> EmailMessage:
    """The mail for a reply: threading headers, our Message-ID, RFC 3834 headers if automatic."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(display_name=clean_line(from_name), addr_spec=from_addr)
    message["To"] = clean_line(out.to)
    message["Subject"] = reply_subject(out.subject)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = _bracketed(out.message_id or new_message_id(from_addr, domain))
    parent = out.in_reply_to.strip().strip("<>")
    if parent:
        message["In-Reply-To"] = _bracketed(parent)
    references = list(dict.fromkeys(
        r for r in (ref.strip().strip("<>") for ref in [*out.references, parent]) if r))
    if len(references) > MAX_REFERENCES:
        # RFC 5322 3.6.4: keep the thread root and the most recent ancestors.
        references = [references[0], *references[-(MAX_REFERENCES - 1):]]
    if references:
        message["References"] = " ".join(_bracketed(r) for r in references)
    if out.automatic:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    text = out.text.replace("\r\n", "\n").replace("\r", "\n")
    message.set_content(text if text.endswith("\n") else text + "\n", charset="utf-8")
    return message
