"""server.tls: HTTPS served directly, the realm following public_url, real clients verifying it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import Docker, Skopeo, Upstream, free_port
from support.gateway import PASSWORDS, base_config, running_gateway
from support.tls import make_certificates


def test_skopeo_and_curl_over_https(registry_upstream: Upstream, tmp_path: Path,
                                    docker: Docker, busybox_image: str) -> None:
    # Seed an image straight into the upstream (docker pushes plain HTTP to 127.0.0.1).
    ref = f"{registry_upstream.host}/myteam/tls-app:1"
    docker.run("tag", busybox_image, ref)
    docker.run("push", ref)

    certs = make_certificates(tmp_path / "certs", "localhost")
    port = free_port()
    config = base_config(registry_upstream.url, port, scheme="https")
    config["server"]["public_url"] = f"https://localhost:{port}"
    config["server"]["tls"] = {"cert": str(certs.server_cert), "key": str(certs.server_key)}
    with running_gateway(config, tmp_path / "gateway", port):
        challenge = subprocess.run(
            ["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", str(certs.ca_cert),
             f"https://localhost:{port}/v2/"], capture_output=True, text=True, check=True)
        assert f'realm="https://localhost:{port}/token"' in challenge.stdout
        token = json.loads(subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(certs.ca_cert), "-u",
             f"alice:{PASSWORDS['alice']}",
             f"https://localhost:{port}/token?service=gateway.test"
             "&scope=repository:myteam/tls-app:pull"],
            capture_output=True, text=True, check=True).stdout)["token"]
        manifest = subprocess.run(
            ["curl", "-sS", "--fail", "--cacert", str(certs.ca_cert), "-H",
             f"Authorization: Bearer {token}", "-H",
             "Accept: application/vnd.docker.distribution.manifest.v2+json",
             f"https://localhost:{port}/v2/myteam/tls-app/manifests/1"],
            capture_output=True, text=True, check=True).stdout
        assert json.loads(manifest)["schemaVersion"] == 2

        cert_dir = tmp_path / "skopeo-certs"
        cert_dir.mkdir()
        (cert_dir / "ca.crt").write_bytes(certs.ca_cert.read_bytes())
        skopeo = Skopeo(tmp_path / "skopeo")
        skopeo.run("login", "--cert-dir", str(cert_dir), "--username", "alice",
                   "--password-stdin", f"localhost:{port}", input=PASSWORDS["alice"],
                   tls_verify=True)
        inspected = skopeo.run("inspect", "--cert-dir", str(cert_dir),
                               f"docker://localhost:{port}/myteam/tls-app:1", tls_verify=True)
        assert json.loads(inspected.stdout)["Name"] == f"localhost:{port}/myteam/tls-app"
        archive = tmp_path / "out.tar"
        skopeo.run("copy", "--src-cert-dir", str(cert_dir),
                   f"docker://localhost:{port}/myteam/tls-app:1", f"docker-archive:{archive}",
                   tls_verify=True)
        assert archive.stat().st_size > 0
        # Without the CA the client refuses the certificate.
        untrusted = skopeo.run("inspect", f"docker://localhost:{port}/myteam/tls-app:1",
                               tls_verify=True, check=False)
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr
