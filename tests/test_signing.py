"""Signing and checking control records, the control key's sources, and the
control agent's and followers' verdicts on signed and forged records (no Kafka)."""
from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from agents.control_plane import ControlState, judge_signed
from agents.control_records import ModelCommand, ModelDeployment, encode
from kafka_plumbing.settings import Settings
from kafka_plumbing.signing import (
    AUDIT, CONTROL, DEPLOYMENTS, BadSignature, ControlKeyError, Signer, control_key, local_key_path,
)
from tables import definitions as defs

KEY = b"k" * 40
SIGNER = Signer(KEY, "alice")
NOW = 1_760_000_000_000


def test_a_signed_record_verifies_as_its_signer_and_time() -> None:
    headers = SIGNER.headers(CONTROL, b"m", b'{"model":"m"}', at_ms=NOW)
    signed = SIGNER.verify(CONTROL, b"m", b'{"model":"m"}', headers)
    assert (signed.by, signed.at_ms) == ("alice", NOW)
    assert Signer(KEY, "someone else").verify(CONTROL, b"m", b'{"model":"m"}', dict(headers)).by == "alice"


@pytest.mark.parametrize("change", ["value", "key", "role", "by", "at", "key_of_signer", "signature"])
def test_any_change_breaks_the_signature(change: str) -> None:
    role, key, value = CONTROL, b"m", b'{"model":"m","primary":1}'
    headers = dict(SIGNER.headers(role, key, value, at_ms=NOW))
    verifier = SIGNER
    if change == "value":
        value = b'{"model":"m","primary":999}'
    elif change == "key":
        key = b"other"
    elif change == "role":
        role = DEPLOYMENTS  # a signed command is not a signed state
    elif change == "by":
        headers["fs-by"] = b"mallory"
    elif change == "at":
        headers["fs-at"] = str(NOW + 1).encode()
    elif change == "key_of_signer":
        verifier = Signer(b"x" * 40, "alice")
    else:
        headers["fs-sig"] = b"0" * 64
    with pytest.raises(BadSignature, match="does not match"):
        verifier.verify(role, key, value, headers)


def test_unsigned_and_garbled_headers_are_refused() -> None:
    with pytest.raises(BadSignature, match="not signed"):
        SIGNER.verify(AUDIT, b"k", b"{}", None)
    with pytest.raises(BadSignature, match="unreadable"):
        SIGNER.verify(AUDIT, b"k", b"{}", [("fs-sig", b"ab"), ("fs-by", b"x"), ("fs-at", b"soon")])


def test_length_prefixes_keep_fields_apart() -> None:
    """Moving bytes between the key and the identity changes the signed message."""
    headers = dict(SIGNER.headers(CONTROL, b"ab", b"v", by="c", at_ms=NOW))
    headers["fs-by"] = b"bc"
    with pytest.raises(BadSignature):
        SIGNER.verify(CONTROL, b"a", b"v", headers)


def test_key_comes_from_the_variable_then_the_file(tmp_path: Path) -> None:
    base = Settings(home=tmp_path, control_key="", control_key_file=None, kafka_bootstrap="broker:9092")
    with pytest.raises(ControlKeyError, match="FS_CONTROL_KEY"):
        control_key(base)  # a cluster and no key: an error, nothing invented
    assert not local_key_path(base).exists()
    key_file = tmp_path / "key"
    key_file.write_text("f" * 40 + "\n")
    assert control_key(replace(base, control_key_file=key_file)) == b"f" * 40
    assert control_key(replace(base, control_key="v" * 32, control_key_file=key_file)) == b"v" * 32
    with pytest.raises(ControlKeyError, match="at least 32"):
        control_key(replace(base, control_key="short"))
    with pytest.raises(ControlKeyError, match="FS_CONTROL_KEY_FILE"):
        control_key(replace(base, control_key_file=tmp_path / "missing"))


def test_dev_mode_creates_one_owner_only_local_key(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, control_key="", control_key_file=None, kafka_bootstrap="")
    with pytest.raises(ControlKeyError):
        control_key(local, create_local=False)
    first = control_key(local)
    assert len(first) >= 32 and control_key(local) == first  # the worker and the command line share it
    assert stat.S_IMODE(os.stat(local_key_path(local)).st_mode) == 0o600


def _plane() -> ControlState:
    return ControlState(defs.Definitions("m", {}, {}), signer=Signer(KEY, "worker:a"))


def _check(command: ModelCommand) -> ModelDeployment:
    if command.primary == 77:
        raise ValueError("no version 77")
    return ModelDeployment(model=command.model, primary=command.primary, previous=command.previous)


def _command(**fields: object) -> bytes:
    return json.dumps({"model": "m", "action": "deploy", "primary": 2, "by": "mallory", **fields}).encode()


def test_the_control_agent_audits_the_signed_identity_not_the_self_reported_one() -> None:
    payload = _command()
    verdict = judge_signed(_plane(), _check, b"m", payload, SIGNER.headers(CONTROL, b"m", payload, at_ms=NOW),
                           max_age_s=300, now_ms=NOW + 1000)
    assert (verdict.result, verdict.by, verdict.action, verdict.target) == ("applied", "alice", "deploy", "m")
    assert verdict.state is not None and verdict.state.primary == 2


def test_a_forged_command_is_refused_as_bad_signature() -> None:
    payload = _command()
    forged = Signer(b"z" * 40, "alice").headers(CONTROL, b"m", payload, at_ms=NOW)
    for headers in (None, forged):
        verdict = judge_signed(_plane(), _check, b"m", payload, headers, max_age_s=300, now_ms=NOW)
        assert (verdict.result, verdict.by, verdict.reason) == ("refused", "forged", "bad_signature")
        assert verdict.state is None and (verdict.action, verdict.target) == ("deploy", "m")
    garbage = judge_signed(_plane(), _check, b"m", b"{broken", None, max_age_s=300, now_ms=NOW)
    assert (garbage.reason, garbage.target) == ("bad_signature", "m")


def test_a_replayed_old_command_is_refused_as_stale() -> None:
    payload = _command()
    headers = SIGNER.headers(CONTROL, b"m", payload, at_ms=NOW)
    late = judge_signed(_plane(), _check, b"m", payload, headers, max_age_s=300, now_ms=NOW + 301_000)
    assert (late.result, late.by, late.reason) == ("refused", "alice", "stale")
    early = judge_signed(_plane(), _check, b"m", payload, headers, max_age_s=300, now_ms=NOW - 301_000)
    assert early.reason == "stale"


def test_a_signed_but_wrong_command_is_refused_for_its_reason() -> None:
    payload = _command(primary=77)
    verdict = judge_signed(_plane(), _check, b"m", payload, SIGNER.headers(CONTROL, b"m", payload),
                           max_age_s=300)
    assert verdict.result == "refused" and "77" in (verdict.reason or "") and verdict.by == "alice"


def test_followers_keep_the_last_verified_state_and_mark_the_forged_key() -> None:
    plane = _plane()
    good = encode(ModelDeployment(model="m", primary=1))
    assert plane.follow_message(b"m", good, SIGNER.headers(DEPLOYMENTS, b"m", good))
    forged = encode(ModelDeployment(model="m", primary=999))
    assert not plane.follow_message(b"m", forged, None)
    assert not plane.follow_message(b"m", forged, SIGNER.headers(CONTROL, b"m", forged))  # a command's signature
    assert plane.models["m"].primary == 1 and plane.rejected == 2
    assert plane.forged_latest == {b"m"} and plane.verified[b"m"][0] == good
    unkeyed = ControlState(defs.Definitions("m", {}, {}))
    assert not unkeyed.follow_message(b"m", good, SIGNER.headers(DEPLOYMENTS, b"m", good))
    assert unkeyed.models == {}


@pytest.mark.parametrize("command", [["worker"], ["models", "rollback", "flight_delay"], ["views", "cutover", "origin_traffic", "1"]])
def test_against_a_cluster_without_a_key_commands_stop_saying_what_to_set(tmp_path: Path, command: list[str]) -> None:
    """Exit 2 before any Kafka client exists (the bootstrap address answers nothing)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("FS_CONTROL_KEY", "FS_CONTROL_KEY_FILE")}
    env.update(FS_HOME=str(tmp_path / "home"), FS_KAFKA_BOOTSTRAP="127.0.0.1:1", FS_REGISTRY=str(tmp_path / "registry"))
    done = subprocess.run([sys.executable, "-m", "app.cli", *command], env=env, capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "FS_CONTROL_KEY" in done.stdout + done.stderr
    assert not (tmp_path / "home" / "control.key").exists()
