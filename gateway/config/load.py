"""Read the YAML file into validated settings, reporting every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

try:  # libyaml: a 10,000-rule file loads in seconds instead of tens of seconds
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

from gateway.config.filechecks import file_problems
from gateway.config.htpasswd import HtpasswdEntry, parse_htpasswd, refused_line_warnings
from gateway.config.identity_checks import identity_problems, identity_warnings
from gateway.config.problems import ConfigError, Problem, format_location
from gateway.config.references import (
    external_name_warnings,
    reference_problems,
    weak_hash_warnings,
)
from gateway.config.schema import Settings


@dataclass(frozen=True)
class LoadedConfig:
    """Validated settings plus what came with them: htpasswd users and warnings."""

    settings: Settings
    htpasswd_users: Mapping[str, HtpasswdEntry]
    raw: Mapping[str, Any] = field(repr=False)  # holds the password hashes
    htpasswd_text: str = field(repr=False)
    warnings: tuple[Problem, ...]


class _UniqueKeyLoader(_SafeLoader):
    """A SafeLoader that records duplicate mapping keys instead of silently keeping the last."""

    duplicates: list[Problem]


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            loader.duplicates.append(
                Problem(f"line {mark.line + 1}", f"duplicate key {key!r}")
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {exc}")]
    finally:
        loader.dispose()
    return data, loader.duplicates


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [p for p in error["loc"] if not (isinstance(p, str) and "[" in p)]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(format_location(loc), message))
    return problems


def load_config(path: Path) -> LoadedConfig:
    """Read, parse and validate `path`; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), f"cannot read: {exc}")]) from exc
    return load_config_text(text, base_dir=path.parent)


def _read_htpasswd(value: object, base_dir: Path,
                   problems: list[Problem]) -> tuple[dict[str, HtpasswdEntry], str]:
    """The users of the htpasswd file the config names (relative to the config's folder)."""
    if not isinstance(value, str):
        return {}, ""
    resolved = Path(value)
    if not resolved.is_absolute():
        resolved = base_dir / resolved
    try:
        text = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem("htpasswd_file", f"cannot read {str(resolved)!r}: {exc}"))
        return {}, ""
    entries, htpasswd_problems = parse_htpasswd(text)
    problems.extend(Problem(f"htpasswd_file:{p.location}", p.message) for p in htpasswd_problems)
    return entries, text


def load_config_text(text: str, base_dir: Path) -> LoadedConfig:
    data, problems = parse_yaml(text)
    if data is None and not problems:
        problems.append(Problem("", "the file is empty"))
    if problems and data is None:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([*problems, Problem("", "expected a mapping at the top level")])

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))

    htpasswd_users, htpasswd_text = _read_htpasswd(data.get("htpasswd_file"), base_dir, problems)

    problems.extend(reference_problems(data, htpasswd_users))
    if settings is not None:  # a step of its own: the files named by valid settings
        problems.extend(file_problems(settings))
        problems.extend(identity_problems(settings, htpasswd_users))
    if problems or settings is None:
        raise ConfigError(problems)
    if settings.htpasswd_file is not None and not settings.htpasswd_file.is_absolute():
        settings = settings.model_copy(update={"htpasswd_file": base_dir / settings.htpasswd_file})
    return LoadedConfig(
        settings=settings,
        htpasswd_users=htpasswd_users,
        raw=data,
        htpasswd_text=htpasswd_text,
        warnings=(*refused_line_warnings(htpasswd_users),
                  *weak_hash_warnings(_config_hashes(settings), htpasswd_users),
                  *identity_warnings(settings),
                  *external_name_warnings(data, htpasswd_users)),
    )


def _config_hashes(settings: Settings) -> dict[str, str]:
    hashes = {f"users.{name}": spec.password_hash.get_secret_value()
              for name, spec in settings.users.items()}
    hashes.update({f"service_accounts.{name}": spec.password_hash.get_secret_value()
                   for name, spec in settings.service_accounts.items()})
    return hashes
