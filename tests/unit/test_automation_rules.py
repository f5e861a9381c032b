from __future__ import annotations

import pytest

from agent_tui.automation.rules import MessageFacts, decide, validate_rules
from agent_tui.config import Rule
from agent_tui.errors import ConfigError


def facts(**kw: object) -> MessageFacts:
    base: dict[str, object] = dict(channel="email", account="shop-mail", sender="a@b.example",
                                   tags=frozenset(), top_entry="order-status", top_score=0.9,
                                   business_hours=True, urgency=None)
    base.update(kw)
    return MessageFacts(**base)  # type: ignore[arg-type]


RULES = (
    Rule("vip", {"sender": "*@vip.example"}, {"assign": "Mia", "priority": "high", "tag": "vip"}),
    Rule("answer order status", {"entry": "order-status", "min_score": 0.8},
         {"reply": "order-status", "tag": ["auto"]}),
    Rule("night", {"time": "after_hours"}, {"after_hours": True}),
    Rule("sms spam", {"channel": ["sms"], "tags": ["spam"]}, {"close": True}),
)


def test_matching_rules_collect_actions_in_order() -> None:
    d = decide(RULES, facts(sender="boss@VIP.example"))
    assert d.rules == ["vip", "answer order status"]
    assert (d.assign, d.priority, d.tags, d.reply_entry) == ("Mia", "high", ["vip", "auto"],
                                                             "order-status")
    assert not d.after_hours and not d.close


def test_score_below_threshold_gets_no_reply() -> None:
    d = decide(RULES, facts(top_score=0.79))
    assert d.reply_entry is None


def test_time_and_tags() -> None:
    assert decide(RULES, facts(business_hours=False, top_entry=None)).after_hours
    assert decide(RULES, facts(channel="sms", tags=frozenset({"spam", "x"}))).close
    assert not decide(RULES, facts(channel="email", tags=frozenset({"spam"}))).close


@pytest.mark.parametrize("rule, key", [
    (Rule("r", {"chanel": "sms"}, {}), "match.chanel"),
    (Rule("r", {}, {"reply_with": "x"}), "actions.reply_with"),
    (Rule("r", {"time": "night"}, {}), "match.time"),
])
def test_bad_rules_name_the_key(rule: Rule, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_rules([rule])
