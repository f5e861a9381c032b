"""A fast path for the MIME structure of well-formed mail, identical to the stdlib parser's.

The stdlib `email.feedparser` walks every line of every part in Python, and for each multipart it
compiles a boundary regex and searches each finished part's whole payload for its last newline: a
mail with a 100 kB attachment costs milliseconds. Most mail is regular, so `parse_structure` cuts
it at its boundary lines with `str.find` and lets the stdlib parser read only the header blocks.

It returns None - and the caller parses with the stdlib parser - whenever the mail is not plainly
regular: a stray CR or LF in a header block or before a boundary, a part without a blank line
after its headers, a boundary line with trailing text or blanks, an empty part, text after the
closing boundary that looks like a boundary, a missing boundary, an unusual transfer encoding on
a multipart, message/* parts, multipart/digest, or deep nesting. Whatever it returns is the tree
the stdlib parser (compat32) builds for the same bytes: the same headers, payloads, preambles,
epilogues and defects (tests/unit/test_mime.py compares the two over every mail it has).
"""

from __future__ import annotations

from email import errors as email_errors
from email import policy
from email.message import Message
from email.parser import Parser

__all__ = ["parse_structure", "raw_payload"]

_HEADERS = Parser(policy=policy.compat32)
MAX_NESTING = 12


def parse_structure(raw: bytes) -> Message | None:
    """The message tree of `raw` as BytesParser(policy=compat32) builds it, or None."""
    # The stdlib ends a line at CRLF, CR or LF. Cuts are made at `newline` only; a stray CR or
    # LF elsewhere is harmless in a body, makes a header block fail its check below, and is
    # looked for before each boundary.
    newline = "\r\n" if b"\r\n" in raw else "\n"
    try:
        return _part(raw.decode("ascii", "surrogateescape"), newline, 0)
    except Exception:   # whatever went wrong here, the stdlib parser decides about this mail
        return None


def _part(text: str, newline: str, depth: int) -> Message | None:
    if depth > MAX_NESTING:
        return None
    if text.startswith(newline):
        head, body = "", text[len(newline):]
    else:
        end = text.find(newline + newline)
        if end < 0:
            return None             # headers up to the end (or the boundary): not regular
        head, body = text[:end + len(newline)], text[end + 2 * len(newline):]
    message = _HEADERS.parsestr(head + newline, headersonly=True)
    if raw_payload(message) or any(isinstance(d, email_errors.MissingHeaderBodySeparatorDefect)
                               for d in message.defects):
        return None                 # a line in the header block that is no header
    maintype = message.get_content_maintype()
    if maintype == "message":
        return None
    if maintype != "multipart":
        message.set_payload(body)
        return message
    if not _split_multipart(message, body, newline, depth):
        return None
    return message


def _split_multipart(message: Message, body: str, newline: str, depth: int) -> bool:
    boundary = message.get_boundary()
    if not boundary or message.get_content_type() == "multipart/digest":
        return False
    if str(message.get("content-transfer-encoding", "8bit")).lower() not in (
            "7bit", "8bit", "binary"):
        return False
    delimiter = "--" + boundary
    marker = newline + delimiter
    if "\r" + delimiter in body or (
            newline == "\r\n" and body.count("\n" + delimiter) != body.count(marker)):
        return False                # a boundary line after a stray CR or LF
    start = 0 if body.startswith(delimiter) else _line_start(body, marker, 0, newline)
    starts: list[int] = []      # where each boundary line starts
    ends: list[int] = []        # and where the line after it starts
    closed = False
    while start >= 0:
        after = start + len(delimiter)
        line_end = body.find(newline, after)
        rest = body[after:len(body) if line_end < 0 else line_end]
        if "\r" in rest or "\n" in rest:
            return False            # the stdlib would end this line at the stray CR or LF
        if rest in ("", "--"):
            if closed or (rest == "" and line_end < 0):
                return False    # a boundary line after the closing one, or one at the very end
            starts.append(start)
            ends.append(len(body) if line_end < 0 else line_end + len(newline))
            closed = rest == "--"
        elif not rest.removeprefix("--").strip(" \t"):
            return False        # a boundary with trailing blanks
        # else: a line that only starts like the boundary (a longer inner boundary): content
        start = _line_start(body, marker, after, newline)
    if not closed or len(starts) < 2:
        return False
    children: list[Message | str] = []
    for number in range(len(starts) - 1):
        begin, end = ends[number], starts[number + 1]
        if end <= begin:
            return False            # an empty part (two boundary lines in a row)
        child = _part(body[begin:end], newline, depth + 1)
        if child is None:
            return False
        # RFC 2046: the newline before a boundary belongs to the boundary.
        if child.get_content_maintype() == "multipart":
            epilogue = child.epilogue
            if epilogue == "":
                child.epilogue = None
            elif epilogue is not None and epilogue.endswith(newline):
                child.epilogue = epilogue[:-len(newline)]
        else:
            payload = raw_payload(child)
            if isinstance(payload, str) and payload.endswith(newline):
                child.set_payload(payload[:-len(newline)])
        children.append(child)
    if starts[0] > 0:
        message.preamble = body[:starts[0] - len(newline)]
    message.set_payload(children)
    message.epilogue = body[ends[-1]:]
    return True


def _line_start(body: str, marker: str, offset: int, newline: str) -> int:
    """Where the next line that starts with the delimiter starts (`marker` is newline +
    delimiter), or -1."""
    found = body.find(marker, offset)
    return found + len(newline) if found >= 0 else -1


def raw_payload(message: Message) -> object:
    """The payload as the parser stored it: undeclared 8-bit bytes still surrogate escapes.

    get_payload() would decode them in the part's charset, replacing what does not decode (and
    raising for a codec such as "undefined"), so the bytes could not be had back."""
    return vars(message).get("_payload")
