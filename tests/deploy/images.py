"""The two images the deployment tests run, built on the session's dockerd."""

from __future__ import annotations

from dataclasses import dataclass

from ops.baseimage import gateway_image, services_image
from support import Docker


@dataclass(frozen=True)
class DeployImages:
    gateway: str   # the repository's Dockerfile
    services: str  # deploy/services/Dockerfile: nginx, redis-server, docker-registry


def build_images(docker: Docker) -> DeployImages:
    """Both images, once per daemon; the container test shares the gateway build."""
    return DeployImages(gateway=gateway_image(docker), services=services_image(docker))
