"""Scoped bearer tokens: parsing every source, identity, scopes, 401 and 403 (no web server)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.tokens import ADMIN, READ, SCORE, Token, TokenError, TokenTable, authorize, load_tokens, parse_entries, parse_file
from kafka_plumbing.settings import Settings


def test_entries_from_the_variable() -> None:
    tokens = parse_entries("alice:admin:s3cr:et ; bob:read,score:bobtoken\n# a comment\n", "FS_TOKENS")
    assert [(t.name, sorted(t.scopes), t.secret) for t in tokens] == [
        ("alice", ["admin"], "s3cr:et"), ("bob", ["read", "score"], "bobtoken")]
    assert "s3cr" not in repr(tokens[0])  # secrets stay out of logs


@pytest.mark.parametrize("text, message", [
    ("alice:admin", "name:scope"),
    ("alice:root:x", "unknown scopes"),
    (":read:x", "needs a name"),
    ("alice:read:", "no secret"),
])
def test_bad_entries_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        parse_entries(text, "FS_TOKENS")


def test_files_are_json_or_lines(tmp_path: Path) -> None:
    as_json = json.dumps([{"name": "ci", "scopes": ["score"], "token": "t1"}, {"name": "ops", "scope": "admin", "token": "t2"}])
    assert [t.name for t in parse_file(as_json, "f")] == ["ci", "ops"]
    assert [t.name for t in parse_file(json.dumps({"tokens": [{"name": "a", "scopes": "read", "token": "x"}]}), "f")] == ["a"]
    assert [t.name for t in parse_file("# tokens\nci:score:t1\n", "f")] == ["ci"]
    with pytest.raises(TokenError, match="JSON"):
        parse_file("[{broken", "f")


def test_all_sources_merge_and_the_admin_token_is_named_admin(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("ci:score:from-file\n")
    table = load_tokens(Settings(tokens="bob:read:bobtoken", tokens_file=tokens_file, admin_token="legacy"))
    assert {t.name: sorted(t.scopes) for t in table.tokens} == {"bob": ["read"], "ci": ["score"], "admin": ["admin"]}
    assert table.identify("legacy").name == "admin"
    assert table.identify("from-file").name == "ci"
    assert table.identify("nope") is None and table.identify("") is None


def test_names_and_secrets_are_unique() -> None:
    with pytest.raises(TokenError, match="unique"):
        TokenTable((Token("a", frozenset({READ}), "x"), Token("a", frozenset({READ}), "y")))
    with pytest.raises(TokenError, match="share a secret"):
        TokenTable((Token("a", frozenset({READ}), "x"), Token("b", frozenset({ADMIN}), "x")))


def test_scopes_decide_401_and_403() -> None:
    table = TokenTable((Token("reader", frozenset({READ}), "r"), Token("root", frozenset({ADMIN}), "a"),
                        Token("scorer", frozenset({SCORE}), "s")))
    assert authorize(table, None, ADMIN).status == 401
    assert authorize(table, "Basic cjpy", ADMIN).status == 401
    assert authorize(table, "Bearer wrong", ADMIN).status == 401
    denied = authorize(table, "Bearer r", ADMIN)
    assert (denied.status, denied.error, denied.identity) == (403, "forbidden", "reader")
    assert authorize(table, "Bearer s", READ).status == 403  # scoring does not grant reads
    assert authorize(table, "bearer  a ", ADMIN).identity == "root"
    assert all(authorize(table, "Bearer a", scope).status == 200 for scope in (READ, SCORE, ADMIN))
    assert authorize(table, "Bearer r", READ).status == 200 and authorize(table, "Bearer s", SCORE).status == 200


class _Request:
    def __init__(self, authorization: str | None = None) -> None:
        self.headers = {} if authorization is None else {"Authorization": authorization}


def _runtime(**settings: object) -> Any:
    """What ``app.web_auth.judge`` reads of a runtime: its settings and tokens."""
    from types import SimpleNamespace

    return SimpleNamespace(settings=Settings(**settings),
                           tokens=TokenTable((Token("reader", frozenset({READ}), "r"), Token("ci", frozenset({SCORE}), "s"))))


def test_reads_and_scoring_need_tokens_only_when_a_setting_says_so() -> None:
    from app.web_auth import judge

    open_runtime = _runtime(require_read_token=False, require_score_token=False)
    assert judge(open_runtime, _Request(), READ).status == 200
    assert judge(open_runtime, _Request(), SCORE).status == 200
    strict = _runtime(require_read_token=True, require_score_token=True)
    assert judge(strict, _Request(), READ).status == 401
    assert judge(strict, _Request("Bearer r"), READ).status == 200
    assert judge(strict, _Request("Bearer r"), SCORE).status == 403
    assert judge(strict, _Request("Bearer s"), SCORE).status == 200


def test_write_routes_are_off_without_an_admin_token() -> None:
    from app.web_auth import judge

    denied = judge(_runtime(), _Request("Bearer r"), ADMIN)
    assert (denied.status, denied.error) == (403, "forbidden") and "no admin token" in (denied.detail or "")


def test_tenant_tokens_see_only_their_tenants_names() -> None:
    from app.tokens import Decision, parse_tenants

    tenants = parse_tenants("acme:departures,flight_delay;wx:origin_weather")
    assert tenants == {"acme": frozenset({"departures", "flight_delay"}), "wx": frozenset({"origin_weather"})}
    table = TokenTable(tuple(parse_entries("a@acme:read:ta;w@wx:read:tw;root:admin:tr", "FS_TOKENS")), tenants)
    acme, wx, root = (Decision(table.identify(s)) for s in ("ta", "tw", "tr"))
    assert acme.token.tenant == "acme" and acme.identity == "a"
    assert acme.sees(table, "origin_traffic", "departures") and not acme.sees(table, "origin_weather", "weather")
    assert wx.sees(table, "origin_weather") and not wx.sees(table, "departures", None)
    assert root.sees(table, "anything") and Decision(None).sees(table, "anything")
    with pytest.raises(TokenError, match="does not define"):
        TokenTable(tuple(parse_entries("x@nowhere:read:t", "FS_TOKENS")), tenants)
    with pytest.raises(TokenError, match="tenant:name"):
        parse_tenants("acme")
    assert parse_file(json.dumps([{"name": "j", "scopes": ["read"], "token": "t", "tenant": "wx"}]), "f")[0].tenant == "wx"


def test_with_tenants_reads_and_scoring_need_a_token() -> None:
    from types import SimpleNamespace

    from app.web_auth import judge

    runtime = SimpleNamespace(settings=Settings(require_read_token=False, require_score_token=False),
                              tokens=TokenTable((), {"acme": frozenset({"departures"})}))
    assert judge(runtime, _Request(), READ).status == 401 and judge(runtime, _Request(), SCORE).status == 401
