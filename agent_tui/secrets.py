"""Secret references: `keyring:SERVICE/USER`, `env:VAR`, `cmd:COMMAND`, and `agent-tui secret`.

A resolved value is registered with the module's `SecretRedactor`, which replaces it in every log
record (DESIGN.md invariant 6); `redact()` does the same for text the CLI prints. Error messages
name the account, the config key and the reference, never a value or a command's output.

On a headless server (SSH, cron) there is usually no Secret Service, so keyring has no usable
backend; the errors then point at the `env:` and `cmd:` alternatives. keyring is imported only when
a keyring reference is used: it is slow to import and cron runs with `env:` need not pay for it.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from agent_tui.config import Account, SecretRef
from agent_tui.errors import NotFound, SecretError, UsageError

KEYRING_SERVICE = "agent-tui"
COMMAND_TIMEOUT = 10.0
REDACTED = "***"
# Shorter values would turn every log line into asterisks ("1" would hit every digit one);
# secrets that short are not worth the name anyway.
MIN_REDACTED_LENGTH = 4

_ALTERNATIVES = ('write "env:VAR" (set it in cron or a systemd EnvironmentFile) or '
                 '"cmd:COMMAND" (e.g. "cmd:pass show agent-tui/NAME") in the config instead')


# --- redaction -------------------------------------------------------------------------------


class SecretRedactor(logging.Filter):
    """A logging filter that replaces every registered secret value in a record's text."""

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if len(value) < MIN_REDACTED_LENGTH or value in self._values:
            return
        with self._lock:
            self._values.add(value)
            # longest first, so a secret that contains another is replaced whole
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: logging reports it itself
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            # format the traceback now, redacted; Formatter prints exc_text when exc_info is gone
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self.redact(text), None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = SecretRedactor()
_factory_installed = False
_factory_lock = threading.Lock()


def install_log_redaction() -> None:
    """Redact every log record when it is created, whichever handler later writes it.

    A filter on a logger does not see records propagated from its children, and handlers added
    later (by a library, by pytest) would miss a filter attached to today's handlers; the record
    factory sees them all. Called on the first registered secret; calling it again does nothing.
    """
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            REDACTOR.filter(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _factory_installed = True


def register_secret(value: str) -> None:
    """From now on, `value` never appears in log records or in `redact()`ed text."""
    install_log_redaction()
    REDACTOR.register(value)


def redact(text: str) -> str:
    """`text` with every resolved secret replaced by ***."""
    return REDACTOR.redact(text)


# --- resolving references --------------------------------------------------------------------


def keyring_name(name: str) -> tuple[str, str]:
    """"SERVICE/USER" -> (SERVICE, USER); a bare NAME means service "agent-tui"."""
    service, sep, user = name.partition("/")
    if not sep:
        service, user = KEYRING_SERVICE, name
    if not service or not user:
        raise UsageError(f"keyring name {name!r}: expected SERVICE/USER or NAME")
    return service, user


def resolve_account_secret(account: Account, env: Mapping[str, str] = os.environ) -> str:
    """The password, auth token or bot token of a configured account."""
    return resolve_secret(account.secret, account=account.name, key=account.secret_key, env=env)


def resolve_secret(ref: SecretRef, *, account: str, key: str = "secret",
                   env: Mapping[str, str] = os.environ,
                   timeout: float = COMMAND_TIMEOUT) -> str:
    """Resolve `ref` and register the value for redaction. Raises SecretError (exit 1)."""
    label = f"account {account!r} {key!r} ({_describe_ref(ref)})"
    if ref.scheme == "env":
        value = env.get(ref.target, "")
        if not value:
            state = "is empty" if ref.target in env else "is not set"
            raise SecretError(f"{label}: environment variable {ref.target} {state}")
    elif ref.scheme == "cmd":
        value = _run_secret_command(ref.target, label, timeout)
    elif ref.scheme == "keyring":
        try:
            service, user = keyring_name(ref.target)
        except UsageError as exc:
            raise SecretError(f"{label}: {exc}") from None
        stored = _keyring_call(label, "get_password", service, user)
        if not stored:
            raise SecretError(f"{label}: no secret {service}/{user} in the keyring; store it "
                              f"with `agent-tui secret set {service}/{user}`")
        value = stored
    else:
        value = ref.text
    register_secret(value)
    return value


def _describe_ref(ref: SecretRef) -> str:
    """The reference as errors show it: a command only by its name (its arguments may be odd)."""
    if ref.scheme != "cmd":
        return str(ref)
    try:
        argv = shlex.split(ref.target)
    except ValueError:
        argv = []
    return f"cmd:{argv[0]} ..." if argv else "cmd:"


def _run_secret_command(command: str, label: str, timeout: float) -> str:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise SecretError(f"{label}: cannot split the command: {exc}") from None
    if not argv:
        raise SecretError(f"{label}: empty command")
    name = argv[0]
    try:
        # no shell, no stdin: a command must not wait for input from cron (invariant 6)
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=timeout, check=False)
    except FileNotFoundError:
        raise SecretError(f"{label}: command {name!r} not found") from None
    except subprocess.TimeoutExpired:
        raise SecretError(f"{label}: command {name!r} did not finish within {timeout:g} s") \
            from None
    except OSError as exc:
        raise SecretError(f"{label}: cannot run command {name!r}: {exc.strerror}") from None
    if result.returncode != 0:
        raise SecretError(f"{label}: command {name!r} exited with status {result.returncode} "
                          "(its output is not shown)")
    lines = result.stdout.decode("utf-8", errors="replace").splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise SecretError(f"{label}: command {name!r} printed nothing")
    return value


def _keyring_call(label: str, function: str, *args: str) -> Any:
    """Call keyring.`function`; "no backend" and "locked" become errors that say what to do."""
    import keyring
    import keyring.backends.fail
    import keyring.errors

    if isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring):
        raise SecretError(f"{label}: no usable keyring backend (a headless server usually has no "
                          f"Secret Service on D-Bus); {_ALTERNATIVES}")
    try:
        return getattr(keyring, function)(*args)
    except keyring.errors.NoKeyringError:
        raise SecretError(f"{label}: no usable keyring backend; {_ALTERNATIVES}") from None
    except keyring.errors.KeyringLocked:
        raise SecretError(f"{label}: the keyring is locked and cannot be unlocked without a "
                          f"desktop session; {_ALTERNATIVES}") from None
    except keyring.errors.PasswordDeleteError:
        raise NotFound(f"{label}: no such secret in the keyring") from None
    except keyring.errors.KeyringError as exc:
        raise SecretError(f"{label}: keyring error: {type(exc).__name__}") from None


# --- `agent-tui secret set|get|delete NAME` -------------------------------------------------


def cmd_secret(action: str, name: str, *, stdin_is_tty: bool, stdin: TextIO | None = None,
               stdout: TextIO | None = None) -> int:
    """Store, print or delete a keyring secret. NAME is SERVICE/USER, or NAME for "agent-tui".

    `set` asks with getpass on a terminal, else reads one line from stdin (a pipe); it never
    prompts when stdin is not a terminal. `get` prints the value: the user asked for it.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    service, user = keyring_name(name)
    label = f"secret {service}/{user}"
    if action == "set":
        value = _read_new_secret(label, stdin_is_tty=stdin_is_tty, stdin=stdin)
        register_secret(value)
        _keyring_call(label, "set_password", service, user, value)
        print(f"stored {service}/{user} in the keyring; refer to it in the config as "
              f"\"keyring:{service}/{user}\"", file=stdout)
    elif action == "get":
        stored = _keyring_call(label, "get_password", service, user)
        if not stored:
            raise NotFound(f"{label}: not in the keyring")
        print(stored, file=stdout)
    elif action == "delete":
        _keyring_call(label, "delete_password", service, user)
        print(f"deleted {service}/{user} from the keyring", file=stdout)
    else:
        raise UsageError(f"secret: unknown action {action!r} (expected set, get or delete)")
    return 0


def _read_new_secret(label: str, *, stdin_is_tty: bool, stdin: TextIO) -> str:
    if stdin_is_tty:
        value = getpass.getpass(f"{label}: ")
    else:
        value = stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError(f"{label}: no value on stdin; pipe one line "
                             "(`printf '%s\\n' \"$VALUE\" | agent-tui secret set NAME`) "
                             "or run it in a terminal")
    if not value:
        raise UsageError(f"{label}: empty value, nothing stored")
    return value
