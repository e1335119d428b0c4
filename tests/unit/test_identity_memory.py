"""Remembered directory identities in process: keys, freshness, and what a login retires."""

from __future__ import annotations

import time

from gateway.state.identities import IdentityKeys, MemoryIdentities, Remembered, remembered

GEN = "g1"


def test_keys_differ_for_any_change_of_name_password_secret_or_generation() -> None:
    keys = IdentityKeys(b"s" * 32)
    key = keys.credentials(GEN, "erin", "pw")
    assert keys.credentials(GEN, "erin", "pw") == key
    others = {keys.credentials(GEN, "eri", "npw"), keys.credentials(GEN, "erin", "pw2"),
              keys.credentials("g2", "erin", "pw"),
              IdentityKeys(b"t" * 32).credentials(GEN, "erin", "pw"), keys.subject(GEN, "erin")}
    assert key not in others and len(others) == 5
    assert "pw" not in key and "erin" not in key and "erin" not in keys.subject(GEN, "erin")
    assert keys.subject(GEN, "erin") != keys.subject("g2", "erin")


async def test_an_identity_is_remembered_by_credentials_and_by_name_for_its_ttl() -> None:
    memory = MemoryIdentities(IdentityKeys(b"s" * 32))
    identity = remembered("erin", frozenset({"platform"}), "pwd:")
    await memory.remember(GEN, "erin", "pw", identity, 60)
    assert await memory.recall(GEN, "erin", "pw", 60) == identity
    assert await memory.recall(GEN, "erin", "other", 60) is None
    assert await memory.recall("g2", "erin", "pw", 60) is None  # directory settings changed
    assert await memory.known(GEN, "erin", 60) == identity
    assert await memory.known(GEN, "heidi", 60) is None
    # A ttl that has shrunk since (a reload) counts from when it was checked, not when stored.
    assert await memory.recall(GEN, "erin", "pw", 0) is None
    assert await memory.known(GEN, "erin", 0) is None


async def test_zero_ttl_remembers_nothing_and_old_checks_are_never_used() -> None:
    memory = MemoryIdentities(IdentityKeys(b"s" * 32))
    await memory.remember(GEN, "erin", "pw", remembered("erin", frozenset(), "pwd:"), 0)
    assert await memory.known(GEN, "erin", 60) is None
    old = Remembered("heidi", frozenset(), "pwd:", time.time() - 120)
    await memory.remember(GEN, "heidi", "pw", old, 60)
    assert await memory.recall(GEN, "heidi", "pw", 600) is None  # expired when stored
    future = Remembered("bob", frozenset(), "pwd:", time.time() + 3600)
    await memory.remember(GEN, "bob", "pw", future, 60)
    assert await memory.recall(GEN, "bob", "pw", 60) is None  # not checked yet: not ours


async def test_a_login_that_moves_the_binding_retires_the_old_passwords() -> None:
    memory = MemoryIdentities(IdentityKeys(b"s" * 32))
    await memory.remember(GEN, "erin", "old", remembered("erin", frozenset(), "pwd:1"), 60)
    await memory.remember(GEN, "erin", "new", remembered("erin", frozenset({"g"}), "pwd:2"), 60)
    assert await memory.recall(GEN, "erin", "old", 60) is None
    hit = await memory.recall(GEN, "erin", "new", 60)
    assert hit is not None and hit.groups == {"g"}
    # Two names typed for one subject (the directory matched "ERIN" to erin): both lead to it.
    await memory.remember(GEN, "ERIN", "new", hit, 60)
    assert await memory.recall(GEN, "ERIN", "new", 60) == hit
    assert await memory.known(GEN, "ERIN", 60) is None  # known by the name the directory returned
