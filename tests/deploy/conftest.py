"""Fixtures of the deployment tests (compose, podman): the images, built once per session."""

from __future__ import annotations

import os

import pytest
from support import Dockerd

from deploy.images import DeployImages, build_images


@pytest.fixture(scope="session")
def deploy_images(dockerd: Dockerd) -> DeployImages:
    """The gateway image and the services image on the session's dockerd."""
    if os.geteuid() != 0:
        pytest.skip("debootstrap (the base image) needs root")
    return build_images(dockerd.client())
