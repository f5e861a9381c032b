"""A real Dovecot IMAP server, started unprivileged under a temporary directory on loopback.

Used by the integration tests, the demo sandbox and the IMAP benchmark. Dovecot 2.3 (Debian package
dovecot-imapd) must be installed at /usr/sbin/dovecot; `Dovecot.available()` says whether it is.

Mail can be put in two ways: over IMAP (`client().append(...)`) or, much faster for thousands of
messages, by writing Maildir files directly (`deliver`) - Dovecot picks them up on its next sync
of the folder, exactly as it does for mail written by an MDA.
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from imapclient import IMAPClient

from agent_tui.loopback import free_port

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
DEFAULT_USER = "agent@shop.test"
DEFAULT_PASSWORD = "s3cret-pass"
STARTUP_DEADLINE = 15.0      # seconds Dovecot may take to accept connections


def _wait_for_banner(host: str, port: int, deadline: float) -> None:
    """Readiness polling: connect until the server greets, or raise after the deadline."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.02)
    raise RuntimeError(f"dovecot did not accept connections on {host}:{port}: {last_error}")


def _traversable_by_others(path: Path) -> bool:
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents] if p.exists())


class Dovecot:
    """One Dovecot instance. Use as a context manager, or call start()/close() yourself."""

    host = "127.0.0.1"

    def __init__(self, root: Path, users: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self._own_root: Path | None = None
        if os.geteuid() == 0 and not _traversable_by_others(Path(root)):
            # Dovecot's processes run as the dovecot user and must reach the passwd file and the
            # mail: root-only temp dirs (pytest's are 0700) would lock them out.
            self._own_root = Path(tempfile.mkdtemp(prefix="agent-tui-dovecot-"))
            root = self._own_root
        self.root = Path(root)
        self.users = dict(users or {DEFAULT_USER: DEFAULT_PASSWORD})
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._unique = itertools.count()
        if os.geteuid() == 0:
            # Dovecot refuses uid 0 for mail; the dovecot system user owns the mail instead.
            self._mail_uid = pwd.getpwnam("dovecot").pw_uid
            self._mail_gid = grp.getgrnam("dovecot").gr_gid
            self._service_user = "dovecot"
            self._login_user = "dovenull"
        else:
            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()
            self._service_user = self._login_user = pwd.getpwuid(os.getuid()).pw_name
        self._write_config()

    @staticmethod
    def available() -> bool:
        return DOVECOT_BINARY.exists()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        log = (self.root / "dovecot.out").open("ab")
        self._process = subprocess.Popen(
            [str(DOVECOT_BINARY), "-F", "-c", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        try:
            _wait_for_banner(self.host, self.port, time.monotonic() + STARTUP_DEADLINE)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None

    def stop(self) -> None:
        """Drop the server and every open connection at once (like a crash or a network cut).

        start() brings it back on the same port with the same mail.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            # The master's imap children keep serving open connections after a SIGTERM to the
            # master alone: kill the whole process group this server was started in.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    pass
            except OSError:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self.stop()
        if self._own_root is not None:
            shutil.rmtree(self._own_root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("dovecot.log", "dovecot.out"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # ---- configuration ---------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def _write_config(self) -> None:
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Dovecot's auth and login processes must reach their sockets in base_dir.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "run", 0o755)
        self._write_passwd()
        self.config_path.write_text(f"""\
protocols = imap
listen = {self.host}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
default_internal_user = {self._service_user}
default_login_user = {self._login_user}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
imap_idle_notify_interval = 1 mins
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={self.root}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # No growing login delay after failed logins (tests try wrong passwords on purpose).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")

    @property
    def passwd_path(self) -> Path:
        return self.root / "passwd"

    def _write_passwd(self) -> None:
        self.passwd_path.write_text("".join(f"{user}:{{PLAIN}}{password}\n"
                                            for user, password in self.users.items()))
        os.chmod(self.passwd_path, 0o644)
        for user in self.users:
            self._make_dirs(self.home(user) / "Maildir")

    def _make_dirs(self, path: Path) -> None:
        """Create a directory chain (and Maildir cur/new/tmp) owned by the mail user."""
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        top = self.root / "home"
        for directory in [path, *(path / s for s in ("cur", "new", "tmp")), *path.parents]:
            if directory == top or top not in directory.parents:
                continue
            os.chown(directory, self._mail_uid, self._mail_gid)

    # ---- mail ------------------------------------------------------------------------------

    def maildir(self, user: str = DEFAULT_USER, folder: str = "INBOX") -> Path:
        base = self.home(user) / "Maildir"
        # Maildir++: INBOX is the root, other folders are ".Name" with "/" as "."
        return base if folder.upper() == "INBOX" else base / ("." + folder.replace("/", "."))

    def deliver(self, raw: bytes, *, user: str = DEFAULT_USER, folder: str = "INBOX",
                seen: bool = False, date: datetime | None = None) -> Path:
        """Write one message as a Maildir file; its mtime becomes the INTERNALDATE."""
        directory = self.maildir(user, folder)
        if not (directory / "cur").is_dir():
            self._make_dirs(directory)
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._unique)}.agent-tui-test"
        target = directory / "cur" / f"{name}:2,{'S' if seen else ''}"
        temporary = directory / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, self._mail_uid, self._mail_gid)
        if date is not None:
            stamp = date.timestamp()
            os.utime(temporary, (stamp, stamp))
        os.rename(temporary, target)
        return target

    def deliver_many(self, messages: Iterable[bytes], *, user: str = DEFAULT_USER,
                     folder: str = "INBOX") -> int:
        count = 0
        for raw in messages:
            self.deliver(raw, user=user, folder=folder)
            count += 1
        return count

    def client(self, user: str = DEFAULT_USER, *, timeout: float = 10.0) -> IMAPClient:
        """A logged-in imapclient connection (caller logs out)."""
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        imap.login(user, self.users[user])
        return imap

    def wipe_mail(self, user: str = DEFAULT_USER) -> None:
        """Remove every mailbox of a user (server stopped or not: Dovecot rebuilds its indexes)."""
        maildir = self.home(user) / "Maildir"
        shutil.rmtree(maildir, ignore_errors=True)
        self._make_dirs(maildir)


def sample_message(number: int, *, sender: str = "customer@example.org",
                   to: str = DEFAULT_USER, subject: str | None = None, body: str | None = None,
                   message_id: str | None = None, extra_headers: str = "") -> bytes:
    """A small, well-formed customer mail, distinct for each number."""
    date = datetime(2024, 5, 1, 9, 0, tzinfo=UTC).timestamp() + number * 60
    stamp = datetime.fromtimestamp(date, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    mid = message_id or f"msg-{number}@example.org"
    text = body if body is not None else f"Hello, where is my order {10000 + number}?\n"
    return (
        f"From: Customer {number} <{sender}>\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject or f'Order question {number}'}\r\n"
        f"Date: {stamp}\r\n"
        f"Message-ID: <{mid}>\r\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{text}"
    ).encode().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

