"""The errors a user may see, and the exit code each one maps to.

Every error that reaches `cli.main` is printed as one line, never as a traceback (unless --debug).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


def one_line(text: str) -> str:
    """`text` with each character that is not printable (line breaks, tabs, controls, bidi and
    other format characters, lone surrogates) written as its Python escape: messages quote keys
    and values from files, and must stay one line that cannot steer the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class AgentTuiError(Exception):
    """Base for every error meant to be shown to the user as one line."""

    exit_code = EXIT_RUNTIME


class UsageError(AgentTuiError):
    """Wrong arguments or input given by the user: exit 2."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A problem in a config or knowledge file; the message names file, line and key."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None, section: str | None = None) -> None:
        # Reads as `agent-tui.toml:42: [[account]] #2 'imap_tls': expected ...`, the
        # file:line: form editors and terminals turn into a jump target.
        self.path = path
        self.line = line
        self.key = key
        self.section = section
        where = ""
        if path:
            where = path if line is None else f"{path}:{line}"
        what = " ".join(p for p in (section, key and f"'{key}'") if p)
        prefix = ": ".join(p for p in (where, what) if p)
        super().__init__(one_line(f"{prefix}: {message}" if prefix else message))


class SecretError(AgentTuiError):
    """A secret reference could not be resolved (the message never contains the secret)."""


class StoreError(AgentTuiError):
    """The store could not be opened or written."""


class NotFound(UsageError):
    """A conversation, contact or entry named on the command line does not exist."""
