"""The real docker CLI through the gateway: login, push, pull, and every refusal looking right."""

from __future__ import annotations

import pytest
from support import Docker, Dockerd
from support.gateway import PASSWORDS, RunningGateway, push_as

PULL_DENIED = "repository does not exist or may require 'docker login'"
PUSH_DENIED = "denied: requested access to the resource is denied"


def pull_error(docker: Docker, ref: str) -> str:
    result = docker.run("pull", ref, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr.strip()


@pytest.fixture(scope="module")
def pushed_image(
    shared_gateway: RunningGateway,
    dockerd: Dockerd,
    busybox_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """alice (team myteam) pushes myteam/internal-tool:1.0 once for the module."""
    docker = dockerd.client(tmp_path_factory.mktemp("alice-docker"))
    return push_as(docker, shared_gateway, "alice", busybox_image,
                   f"{shared_gateway.host}/myteam/internal-tool:1.0")


def test_alice_pushes_and_pulls_back(
    pushed_image: str, docker: Docker, shared_gateway: RunningGateway
) -> None:
    docker.login(shared_gateway.host, "alice", PASSWORDS["alice"])
    # docker login stored an identity (refresh) token, not the password.
    config = (docker.config_dir / "config.json").read_text()
    assert "identitytoken" in config and PASSWORDS["alice"] not in config
    docker.run("pull", pushed_image)
    inspect = docker.run("image", "inspect", pushed_image)
    assert pushed_image in inspect.stdout
    docker.run("rmi", pushed_image)


def test_anonymous_pull_is_denied_like_a_missing_repository(
    pushed_image: str, docker: Docker, shared_gateway: RunningGateway
) -> None:
    missing = f"{shared_gateway.host}/myteam/does-not-exist:1.0"
    private_error = pull_error(docker, pushed_image)
    missing_error = pull_error(docker, missing)
    assert PULL_DENIED in private_error and PULL_DENIED in missing_error
    assert private_error.replace("internal-tool", "X") == missing_error.replace("does-not-exist", "X")


def test_user_without_grant_is_denied_like_a_missing_repository(
    pushed_image: str, docker: Docker, shared_gateway: RunningGateway
) -> None:
    docker.login(shared_gateway.host, "bob", PASSWORDS["bob"])
    private_error = pull_error(docker, pushed_image)
    missing_error = pull_error(docker, f"{shared_gateway.host}/myteam/does-not-exist:1.0")
    assert PULL_DENIED in private_error
    assert private_error.replace("internal-tool", "X") == missing_error.replace("does-not-exist", "X")


def test_service_account_pulls_but_cannot_push(
    pushed_image: str, docker: Docker, shared_gateway: RunningGateway
) -> None:
    docker.login(shared_gateway.host, "ci-bot", PASSWORDS["ci-bot"])
    docker.run("pull", pushed_image)
    other = f"{shared_gateway.host}/myteam/ci-output:1"
    docker.run("tag", pushed_image, other)
    result = docker.run("push", other, check=False)
    assert result.returncode != 0 and PUSH_DENIED in result.stderr
    docker.run("rmi", pushed_image, other)


@pytest.mark.parametrize("user", ["old-bot", "dave"])
def test_expired_or_disabled_accounts_cannot_log_in(
    user: str, docker: Docker, shared_gateway: RunningGateway
) -> None:
    result = docker.login(shared_gateway.host, user, PASSWORDS[user], check=False)
    assert result.returncode != 0
    assert "incorrect username or password" in result.stderr


def test_wrong_password_fails_login(docker: Docker, shared_gateway: RunningGateway) -> None:
    result = docker.login(shared_gateway.host, "alice", "not-her-password", check=False)
    assert result.returncode != 0
    assert "unauthorized: incorrect username or password" in result.stderr
    unknown = docker.login(shared_gateway.host, "mallory", "whatever", check=False)
    assert unknown.returncode != 0 and "incorrect username or password" in unknown.stderr


def test_public_repository_pulls_anonymously(
    docker: Docker, busybox_image: str, shared_gateway: RunningGateway
) -> None:
    ref = f"{shared_gateway.host}/library/busybox:stable"
    docker.login(shared_gateway.host, "carol", PASSWORDS["carol"])
    docker.run("tag", busybox_image, ref)
    docker.run("push", ref)
    docker.run("rmi", ref)
    docker.run("logout", shared_gateway.host)
    docker.run("pull", ref)
    docker.run("rmi", ref)


@pytest.mark.parametrize("repository", [
    "nomatch/thing",  # no rule matches: a private repository nobody may use
    "library/alice-was-here",  # public, but only carol may push
])
def test_push_without_push_grant_is_denied(
    repository: str, docker: Docker, busybox_image: str, shared_gateway: RunningGateway
) -> None:
    docker.login(shared_gateway.host, "alice", PASSWORDS["alice"])
    ref = f"{shared_gateway.host}/{repository}:1"
    docker.run("tag", busybox_image, ref)
    result = docker.run("push", ref, check=False)
    assert result.returncode != 0 and PUSH_DENIED in result.stderr
    docker.run("rmi", ref)
