"""skopeo and containerd's ctr through the gateway."""

from __future__ import annotations

import pytest
from support import Ctr, Docker, Skopeo
from support.gateway import PASSWORDS, RunningGateway, push_as


def creds(user: str) -> str:
    return f"{user}:{PASSWORDS[user]}"


@pytest.fixture
def private_image(gateway: RunningGateway, docker: Docker, busybox_image: str) -> str:
    return push_as(docker, gateway, "alice", busybox_image, f"{gateway.host}/myteam/app:1")


def test_skopeo_copies_out_and_in(private_image: str, gateway: RunningGateway, skopeo: Skopeo) -> None:
    archive = skopeo.workdir / "app.tar"
    skopeo.run(
        "copy",
        f"docker://{private_image}",
        f"docker-archive:{archive}:myteam/app:1",
        src_creds=creds("alice"),
    )
    assert archive.stat().st_size > 0
    skopeo.run(
        "copy",
        f"docker-archive:{archive}",
        f"docker://{gateway.host}/myteam/copy:2",
        dest_creds=creds("alice"),
    )
    copied = skopeo.inspect(f"docker://{gateway.host}/myteam/copy:2", creds=creds("ci-bot"))
    original = skopeo.inspect(f"docker://{private_image}", creds=creds("alice"))
    assert copied["Layers"] == original["Layers"]
    refused = skopeo.run(
        "copy",
        f"docker-archive:{archive}",
        f"docker://{gateway.host}/myteam/copy:3",
        dest_creds=creds("bob"),
        check=False,
    )
    assert refused.returncode != 0
    assert "requested access to the resource is denied" in refused.stderr


def test_skopeo_delete_only_by_a_holder_of_delete(
    private_image: str, gateway: RunningGateway, skopeo: Skopeo
) -> None:
    ref = f"docker://{private_image}"
    for user in ("bob", "ci-bot"):
        refused = skopeo.run("delete", ref, creds=creds(user), check=False)
        assert refused.returncode != 0, user
        assert "denied" in refused.stderr.lower() or "unauthorized" in refused.stderr.lower()
    skopeo.inspect(ref, creds=creds("alice"))
    skopeo.run("delete", ref, creds=creds("alice"))
    gone = skopeo.run("inspect", ref, creds=creds("alice"), check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr


def test_skopeo_anonymous_and_wrong_password(private_image: str, skopeo: Skopeo) -> None:
    anonymous = skopeo.run("inspect", f"docker://{private_image}", check=False)
    assert anonymous.returncode != 0
    assert "requested access to the resource is denied" in anonymous.stderr
    wrong = skopeo.run("inspect", f"docker://{private_image}", creds="alice:nope", check=False)
    assert wrong.returncode != 0 and "invalid username/password" in wrong.stderr


def test_ctr_pulls_with_credentials_and_is_denied_without(private_image: str, ctr: Ctr) -> None:
    ctr.pull(private_image, user=creds("alice"))
    assert private_image in ctr.images()
    ctr.remove_all_images()
    anonymous = ctr.pull(private_image, check=False)
    assert anonymous.returncode != 0
    assert "pull access denied" in anonymous.stderr + anonymous.stdout
    stranger = ctr.pull(private_image, user=creds("bob"), check=False)
    assert stranger.returncode != 0
    assert "pull access denied" in stranger.stderr + stranger.stdout
