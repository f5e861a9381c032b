"""The `[ui]` part of the config: saved inbox views (`[[ui.view]]`) and `[ui.keymap]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_tui.config import UI_BINDING_IDS, SavedView, load_config
from agent_tui.errors import EXIT_USAGE, ConfigError
from tests.unit.test_config import EXAMPLE, config_error, write_config

VIEWS = """\
[ui]
theme = "textual-light"

[[ui.view]]
name = "chats"
channel = "telegram"
queue = true

[[ui.view]]
name = "mine, any status"
assignee = "me"
status = "any"
tag = "#vip"

[[ui.view]]
name = "nobody's overdue"
assignee = "unassigned"
overdue = true
"""


def test_saved_views_are_typed_in_file_order(tmp_path: Path) -> None:
    ui = load_config(write_config(tmp_path, VIEWS), env={}).ui
    assert ui.theme == "textual-light"
    assert ui.views == (
        SavedView(name="chats", channel="telegram", queue=True),
        SavedView(name="mine, any status", status=None, assignee="me", tag="vip"),
        SavedView(name="nobody's overdue", assignee="unassigned", overdue=True),
    )
    assert ui.views[0].status == "open"             # the default, as for the built-in views


def test_no_ui_table_means_no_saved_views_and_no_keymap(tmp_path: Path) -> None:
    ui = load_config(write_config(tmp_path, '[agent]\nname = "Mia"\n'), env={}).ui
    assert ui.views == () and dict(ui.keymap) == {}


def test_keymap_takes_dotted_and_quoted_ids(tmp_path: Path) -> None:
    text = ('[ui.keymap]\ninbox.close = "x"\n"inbox.reply" = "R, ctrl+r"\n'
            'app.help = "?,f1"\n[ui.keymap.conversation]\nsave_attachments = "w"\n')
    keymap = load_config(write_config(tmp_path, text), env={}).ui.keymap
    assert dict(keymap) == {"inbox.close": "x", "inbox.reply": "R,ctrl+r", "app.help": "?,f1",
                            "conversation.save_attachments": "w"}


def test_example_config_has_views_and_a_keymap() -> None:
    ui = load_config(EXAMPLE, env={}).ui
    assert ui.views and ui.views[0].name == "my chats"
    assert set(ui.keymap) <= UI_BINDING_IDS and ui.keymap


ERROR_CASES = {
    "unknown view key": (VIEWS + 'colour = "red"\n', "colour", "[[ui.view]] #3 'colour'",
                         "unknown key"),
    "view key typo": (VIEWS + 'chanel = "sms"\n', "chanel", "'chanel'",
                      "did you mean 'channel'"),
    "view without name": ('[[ui.view]]\nchannel = "sms"\n', "[[ui.view]]",
                          "[[ui.view]] #1 'name'", "missing required key"),
    "empty view name": ('[[ui.view]]\nname = " "\n', "name", "'name'", "expected a view name"),
    "duplicate view name": (VIEWS + '[[ui.view]]\nname = "chats"\n', 'name = "chats"',
                            "[[ui.view]] #4 'name'", 'duplicate view name "chats"'),
    "view status": ('[[ui.view]]\nname = "v"\nstatus = "done"\n', "status", "'status'",
                    "expected one of open, pending, snoozed, closed, any"),
    "view channel": ('[[ui.view]]\nname = "v"\nchannel = "fax"\n', "channel", "'channel'",
                     "expected one of email, sms"),
    "view overdue type": ('[[ui.view]]\nname = "v"\noverdue = "yes"\n', "overdue",
                          "'overdue'", 'expected true or false, got "yes"'),
    "view tag with spaces": ('[[ui.view]]\nname = "v"\ntag = "a b"\n', "tag", "'tag'",
                             "one tag name"),
    "view as a single table": ('[ui.view]\nname = "v"\n', "[ui.view]", "view",
                               "tables, got a table"),
    "unknown binding id": ('[ui.keymap]\ninbox.clsoe = "x"\n', "clsoe",
                           "[ui.keymap] 'inbox.clsoe'", "did you mean 'inbox.close'"),
    "binding id without a near match": ('[ui.keymap]\n"launch" = "x"\n', "launch",
                                        "[ui.keymap] 'launch'", "unknown binding id"),
    "keys not a string": ('[ui.keymap]\n"inbox.close" = 5\n', "inbox.close", "'inbox.close'",
                          "expected keys such as"),
    "keys with spaces": ('[ui.keymap]\ninbox.close = "ctrl + x"\n', "inbox.close",
                         "'inbox.close'", 'got "ctrl + x"'),
    "empty key in a list": ('[ui.keymap]\ninbox.close = "x,"\n', "inbox.close",
                            "'inbox.close'", "expected keys such as"),
    "keymap not a table": ('[ui]\nkeymap = "vim"\n', "keymap", "keymap",
                           "expected a table"),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_each_ui_error_names_file_line_and_key(tmp_path: Path,
                                               case: tuple[str, str, str, str]) -> None:
    text, line_fragment, key, message = case   # the error is on the last line with the fragment
    error = config_error(tmp_path, text)
    expected_line = max(n for n, line in enumerate(text.splitlines(), 1) if line_fragment in line)
    assert f"agent-tui.toml:{expected_line}:" in str(error), str(error)
    assert key in str(error) and message in str(error), str(error)
    assert error.exit_code == EXIT_USAGE and isinstance(error, ConfigError)
