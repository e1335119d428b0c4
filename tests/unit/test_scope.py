"""Token scope parsing."""

from __future__ import annotations

from gateway.policy.scope import RepositoryScope, parse_scopes


def test_single_and_repeated_scopes() -> None:
    parsed = parse_scopes(["repository:team/app:pull,push", "repository:other/x:pull"])
    assert parsed.repositories == (
        RepositoryScope("team/app", frozenset({"pull", "push"})),
        RepositoryScope("other/x", frozenset({"pull"})),
    )
    assert not parsed.catalog


def test_space_separated_values_and_catalog() -> None:
    parsed = parse_scopes(["repository:a/b:pull registry:catalog:* repository:a/b:delete"])
    assert parsed.repositories == (RepositoryScope("a/b", frozenset({"pull", "delete"})),)
    assert parsed.catalog


def test_star_means_every_action() -> None:
    parsed = parse_scopes(["repository:team/app:*"])
    assert parsed.repositories[0].actions == {"pull", "push", "delete"}


def test_plugin_class_is_a_repository() -> None:
    parsed = parse_scopes(["repository(plugin):team/app:pull"])
    assert parsed.repositories == (RepositoryScope("team/app", frozenset({"pull"})),)


def test_malformed_and_unknown_scopes_are_dropped() -> None:
    parsed = parse_scopes(
        [
            "",
            "garbage",
            "repository:Team/App:pull",
            "repository::pull",
            "repository:a/b:fly,swim",
            "image:a/b:pull",
            "repository:a/../b:pull",
            "registry:catalog:search",
        ]
    )
    assert parsed.repositories == (RepositoryScope("a/b", frozenset()),)
    assert not parsed.catalog


def test_format_orders_actions() -> None:
    assert RepositoryScope("a/b", frozenset({"push", "pull"})).format() == "repository:a/b:pull,push"


def test_scope_count_is_bounded() -> None:
    parsed = parse_scopes([" ".join(f"repository:r{i}:pull" for i in range(1000))])
    assert len(parsed.repositories) == 32
