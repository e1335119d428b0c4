"""nginx as the Docker docs' authenticating proxy (htpasswd, bcrypt), tuned as an operator would.

The recipe ("Authenticate proxy with nginx" in the distribution docs) is kept as written: the
user-agent guard, `auth_basic` with a bcrypt htpasswd file, the API version header via `map`,
`client_max_body_size 0`, `chunked_transfer_encoding on`, the forwarded headers and the 900 s read
timeout. TLS is left out on every path of the bench (all plain HTTP on loopback).

What a careful operator adds for a registry (as Harbor's and GitLab's bundled nginx do):
- `proxy_request_buffering off`: stream pushes upstream instead of spooling whole layers to disk;
- `proxy_buffering off` with a 1 MiB `proxy_buffer_size`: stream pulls instead of spooling them to
  temp files, in large reads (the default buffer is one 4-8 KiB page);
- keep-alive to the upstream (`keepalive` + HTTP/1.1 + an empty Connection header).
"""

from __future__ import annotations

from pathlib import Path

from support.procs import ManagedProcess, find_program, wait_until

TEMPLATE = """\
daemon off;
master_process on;
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream docker-registry {{
        {servers}
        keepalive 64;
    }}

    map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {{
        '' 'registry/2.0';
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;

        # disable any limits to avoid HTTP 413 for large image uploads
        client_max_body_size 0;

        # required to avoid HTTP 411: see Issue #1486 (https://github.com/moby/moby/issues/1486)
        chunked_transfer_encoding on;

        location /v2/ {{
            # Do not allow connections from docker 1.5 and earlier
            if ($http_user_agent ~ "^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$" ) {{
                return 404;
            }}
{auth}
            add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;

            proxy_pass                          http://docker-registry;
            proxy_set_header  Host              $http_host;
            proxy_set_header  X-Real-IP         $remote_addr;
            proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
            proxy_set_header  X-Forwarded-Proto $scheme;
            proxy_read_timeout                  900;

            # The operator's tuning (see the module docstring).
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 1m;
            proxy_buffers 4 1m;  # needed by the check below, unused without buffering
            proxy_busy_buffers_size 2m;
        }}
{extra}
    }}
}}
"""

AUTH = """\
            auth_basic "Registry realm";
            auth_basic_user_file {htpasswd};
"""


class Nginx:
    """nginx on 127.0.0.1:`port` in front of `servers` ("host:port" each)."""

    def __init__(self, workdir: Path, port: int, servers: list[str], htpasswd: Path | None,
                 workers: int | str = "auto", extra: str = "") -> None:
        self.workdir = workdir
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "nginx.conf"
        self.config_path.write_text(TEMPLATE.format(
            dir=workdir, port=port, workers=workers, extra=extra,
            servers="\n        ".join(f"server {s};" for s in servers),
            auth=AUTH.format(htpasswd=htpasswd) if htpasswd else "",
        ))
        self.process = ManagedProcess(
            "nginx", [find_program("nginx"), "-c", str(self.config_path), "-p", str(workdir)],
            log_path=workdir / "nginx.out", cwd=workdir)

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout=10)

    def _ready(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True

    def stop(self) -> None:
        self.process.stop()
        wait_until(lambda: not (self.workdir / "nginx.pid").exists(), timeout=5, what="nginx exit")
