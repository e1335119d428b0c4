"""Remembered directory identities: keys bind the credentials and the client generation."""

from __future__ import annotations

from gateway.state.identities import MemoryIdentities, remembered


def test_keys_differ_for_any_change_of_name_password_secret_or_generation() -> None:
    memory = MemoryIdentities(b"s" * 32)
    key = memory.key(1, "erin", "pw")
    assert memory.key(1, "erin", "pw") == key
    others = {memory.key(1, "eri", "npw"), memory.key(1, "erin", "pw2"), memory.key(2, "erin", "pw"),
              MemoryIdentities(b"t" * 32).key(1, "erin", "pw")}
    assert key not in others and len(others) == 4
    assert b"pw" not in key and b"erin" not in key


def test_an_identity_is_remembered_for_its_ttl_and_zero_remembers_nothing() -> None:
    memory = MemoryIdentities(b"s" * 32)
    identity = remembered("erin", frozenset({"platform"}), "pwd:")
    memory.put(b"a", identity, 60)
    memory.put(b"b", identity, 0)
    assert memory.get(b"a") == identity
    assert memory.get(b"b") is None
    memory.forget_all()
    assert memory.get(b"a") is None
