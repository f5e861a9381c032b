"""`agent-tui doctor`: check config, secrets, store, knowledge and every account, one line each."""

from __future__ import annotations

import asyncio
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_tui.errors import AgentTuiError
from connectors.base import ConnectorError

CHECK_TIMEOUT = 20.0


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


@dataclass(slots=True)
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, *, warning: bool = False) -> None:
        self.checks.append(Check(name, ok, detail, warning))

    def text(self) -> str:
        return "".join(c.line() + "\n" for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [
            {"name": c.name, "ok": c.ok, "warning": c.warning, "detail": c.detail}
            for c in self.checks]}


def _private(path: Path) -> bool:
    return not (path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def _readable_by_others(paths: list[Path]) -> list[str]:
    """A `chmod` line for each existing path that group or others can reach."""
    fixes = []
    for path in paths:
        if path.exists() and not _private(path):
            fixes.append(f"chmod {'700' if path.is_dir() else '600'} {path}")
    return fixes


def private_files_check(report: DoctorReport, store_path: Path | None, log_file: Path) -> None:
    """Customer text lives in the store (and its WAL), the logs and the caches: only their
    owner may read them (DESIGN.md: a store only its owner can read)."""
    paths: list[Path] = []
    if store_path is not None:
        paths += [store_path.parent, store_path, *(store_path.with_name(store_path.name + suffix)
                                                   for suffix in ("-wal", "-shm")),
                  store_path.parent / "cache"]
    paths += [log_file.parent, *sorted(log_file.parent.glob(log_file.name + "*"))]
    fixes = _readable_by_others(paths)
    if fixes:
        report.add("permissions", True, "readable by others: " + "; ".join(fixes), warning=True)
    else:
        report.add("permissions", True, "store, logs and caches are private (0600/0700)")


async def run_doctor(config_path: str | None) -> DoctorReport:
    from agent_tui.config import load_config
    from agent_tui.engine.runtime import build_connector
    from agent_tui.secrets import resolve_account_secret

    report = DoctorReport()
    try:
        config = load_config(config_path)
    except AgentTuiError as exc:
        report.add("config", False, str(exc))
        return report
    report.add("config", True, str(config.path) if config.path else "no config file: defaults")
    for warning in config.warnings:
        report.add("config", True, warning, warning=True)

    try:
        from agent_tui.store import open_configured_store
        from agent_tui.store.encryption import encryption_detail

        open_configured_store(config.store).close()
        if config.store.is_postgres:
            from agent_tui.store.postgres import describe_url

            report.add("store", True, describe_url(config.store.path))   # never the password
        else:
            report.add("store", True, f"{config.store.path} ({encryption_detail(config.store)})")
    except AgentTuiError as exc:
        report.add("store", False, str(exc))
    from agent_tui.logs import log_path

    private_files_check(report, None if config.store.is_postgres else Path(config.store.path),
                        log_path())

    if config.knowledge.path.exists():
        from agent_tui.knowledge import check_knowledge

        problems = check_knowledge(config.knowledge.path)
        errors = [p for p in problems if p.severity == "error"]
        report.add("knowledge", not errors,
                   f"{config.knowledge.path}: {len(errors)} errors, "
                   f"{len(problems) - len(errors)} warnings"
                   + (f"; first: {errors[0].message}" if errors else ""))
    else:
        report.add("knowledge", True, f"{config.knowledge.path} does not exist: no suggestions",
                   warning=True)

    for account in config.accounts:
        name = f"account {account.name}"
        try:
            connector = build_connector(account, resolve_account_secret(account))
        except AgentTuiError as exc:
            report.add(name, False, str(exc))
            continue
        try:
            detail = await asyncio.wait_for(connector.check(), CHECK_TIMEOUT)
            report.add(name, True, detail)
        except TimeoutError:
            report.add(name, False, f"no answer within {CHECK_TIMEOUT:.0f} s")
        except ConnectorError as exc:
            report.add(name, False, str(exc))
        finally:
            await connector.close()
    if not config.accounts:
        report.add("accounts", True, "none configured (see config.example.toml)", warning=True)
    return report
