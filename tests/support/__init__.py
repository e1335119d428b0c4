"""Real programs for the tests: registry, redis-server, dockerd, skopeo, ctr, slapd.

Fixtures that use these live in ``tests/conftest.py``; see there for how to use them.
"""

from .ctr import Ctr
from .docker import Docker, Dockerd, import_busybox, start_dockerd
from .procs import (
    CommandError,
    CommandTimeout,
    ManagedProcess,
    StartupError,
    free_port,
    run_command,
    wait_until,
)
from .redis_server import RedisServer, start_redis
from .registry import Upstream, seed_repositories, start_registry
from .skopeo import Skopeo
from .slapd import Slapd, start_slapd

__all__ = [
    "CommandError",
    "CommandTimeout",
    "Ctr",
    "Docker",
    "Dockerd",
    "ManagedProcess",
    "RedisServer",
    "Skopeo",
    "Slapd",
    "StartupError",
    "Upstream",
    "free_port",
    "import_busybox",
    "run_command",
    "seed_repositories",
    "start_dockerd",
    "start_redis",
    "start_registry",
    "start_slapd",
    "wait_until",
]
