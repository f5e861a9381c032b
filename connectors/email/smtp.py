"""Sending with aiosmtplib: TLS verified (plaintext only to loopback), errors mapped for the outbox.

SMTP 4xx and network trouble before the message was handed over -> TransientError (retry later);
5xx -> PermanentError with the server's text; refused credentials -> AuthError. A connection lost
after the message data went out is ambiguous (the server may have accepted it): UncertainDelivery,
so that the outbox never sends it a second time on its own (invariant 2).
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import aiosmtplib
from aiosmtplib.email import flatten_message

from connectors.base import (
    AuthError,
    ConnectorError,
    PermanentError,
    TransientError,
    UncertainDelivery,
)
from connectors.email.endpoint import Endpoint


def flatten(message: EmailMessage) -> bytes:
    """The exact bytes sent over SMTP and appended to Sent (7-bit safe, CRLF)."""
    return flatten_message(message, utf8=False, cte_type="7bit")


def _client(endpoint: Endpoint) -> aiosmtplib.SMTP:
    context = endpoint.tls_context()
    return aiosmtplib.SMTP(
        hostname=endpoint.host, port=endpoint.port, timeout=endpoint.timeout,
        use_tls=endpoint.tls == "implicit",
        # start_tls=None would silently stay in plaintext when STARTTLS is missing.
        start_tls=endpoint.tls == "starttls",
        validate_certs=context is not None, tls_context=context)


def _response_error(endpoint: Endpoint, code: int, text: str, what: str) -> ConnectorError:
    detail = endpoint.describe(f"{what} refused: {code} {text}".strip())
    if 400 <= code < 500:
        return TransientError(detail)
    return PermanentError(detail)


def _map_error(endpoint: Endpoint, exc: Exception, phase: str) -> ConnectorError:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return AuthError(endpoint.describe(
            f"login as {endpoint.username!r} refused ({exc.code} {exc.message})"))
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0] if exc.recipients else None
        if first is None:
            return PermanentError(endpoint.describe("every recipient refused"))
        return _response_error(endpoint, first.code, first.message, f"recipient {first.recipient}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _response_error(endpoint, exc.code, exc.message, phase)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectorError(endpoint.describe(
            f"TLS certificate not trusted: {exc.verify_message}"))
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return ConnectorError(endpoint.describe(
            f"TLS certificate not trusted: {cause.verify_message}"))
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ConnectorError(endpoint.describe(str(exc)))
    return TransientError(endpoint.describe(f"{phase}: {exc}"))


async def _login(smtp: aiosmtplib.SMTP, endpoint: Endpoint) -> None:
    await smtp.connect()
    # A server that offers no AUTH (a local relay, the test sink) takes mail without a login.
    if not smtp.esmtp_extensions:
        await smtp.ehlo()
    if endpoint.username and smtp.supports_extension("auth"):
        await smtp.login(endpoint.username, endpoint.password)


async def send_message(endpoint: Endpoint, raw: bytes, *, sender: str,
                       recipients: list[str]) -> None:
    """Hand `raw` to the server for `recipients`; raise a connector error on any failure."""
    smtp = _client(endpoint)
    phase = "connecting"
    try:
        await _login(smtp, endpoint)
        phase = "MAIL FROM"
        await smtp.mail(sender)
        for recipient in recipients:
            phase = f"RCPT TO {recipient}"
            await smtp.rcpt(recipient)
        phase = "DATA"
        await smtp.data(raw)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        if phase == "DATA":
            raise UncertainDelivery(endpoint.describe(
                f"connection lost after the message was sent ({exc}); it may have been "
                "delivered - check before sending it again")) from None
        raise _map_error(endpoint, exc, phase) from None
    except aiosmtplib.SMTPException as exc:
        raise _map_error(endpoint, exc, phase) from None
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


async def check(endpoint: Endpoint) -> str:
    """Connect and log in; a one-line description for `doctor`."""
    smtp = _client(endpoint)
    try:
        await _login(smtp, endpoint)
        secured = "TLS" if endpoint.tls != "none" else "plaintext (loopback)"
        return f"SMTP {endpoint.where} ok ({secured})"
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _map_error(endpoint, exc, "connecting") from None
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
