"""A real OpenLDAP ``slapd`` on 127.0.0.1 with the test directory in ``ldap/people.ldif``.

Its own ``slapd.conf`` (schemas from /etc/ldap/schema, back_mdb and the ppolicy overlay from
/usr/lib/ldap), data loaded with ``slapadd`` before the first start, and two listeners:
``ldap://127.0.0.1:PORT`` (which also offers StartTLS) and ``ldaps://127.0.0.1:TLS_PORT``, both
with a certificate from a CA made for this run (``ca_file``). ``stop()`` / ``start()`` restart
it on the same ports and data (an outage); ``pause()`` / ``resume()`` freeze it (SIGSTOP), so
clients connect but get no answer (a timeout). ``binds()`` counts the BIND operations in its
``stats`` log. Every password here is a test password.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .procs import ManagedProcess, StartupError, find_program, free_port, run_command
from .tls import TestCertificates, make_certificates

LDIF = Path(__file__).resolve().parent / "ldap" / "people.ldif"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")

BASE_DN = "dc=example,dc=org"
USER_BASE = f"ou=people,{BASE_DN}"
GROUP_BASE = f"ou=groups,{BASE_DN}"
SERVICE_DN = f"cn=registry,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "registry-bind-secret"
ROOT_DN = f"cn=admin,{BASE_DN}"
ROOT_PASSWORD = "test-root-secret"
# uid -> password of every person in people.ldif (see its header for who is in which group).
PASSWORDS = {
    "alice": "alice-secret", "bob": "bob-secret", "Carol": "carol-secret", "dave": "dave-secret",
    "erin": "erin-secret", "frank jones": "frank-secret", "grace*(ops)": "grace-secret",
    "heidi": "heidi-secret",
}
# uid -> DN, where the DN is not simply uid=UID,USER_BASE.
SPECIAL_DNS = {"heidi": f"cn=Hall\\, Heidi,{USER_BASE}"}

_BIND = re.compile(r' conn=\d+ op=\d+ BIND dn="(?P<dn>[^"]*)" method=')

_CONF = """\
{includes}
modulepath {module_dir}
moduleload back_mdb
moduleload ppolicy
pidfile {workdir}/slapd.pid
argsfile {workdir}/slapd.args
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

database mdb
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_password}
directory {workdir}/data
maxsize 16777216
overlay ppolicy
ppolicy_default "cn=default,ou=policies,{base}"
# Passwords are only ever compared by a bind; the search account reads everything else.
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{service_dn}" read
    by self read
    by * none
"""


def user_dn(uid: str) -> str:
    """The DN of a person in people.ldif."""
    return SPECIAL_DNS.get(uid, f"uid={uid},{USER_BASE}")


@dataclass
class Slapd:
    workdir: Path
    port: int
    tls_port: int
    certs: TestCertificates
    process: ManagedProcess

    bind_dn = SERVICE_DN
    bind_password = SERVICE_PASSWORD
    base_dn = BASE_DN
    user_base = USER_BASE
    group_base = GROUP_BASE
    root_dn = ROOT_DN
    root_password = ROOT_PASSWORD
    passwords = PASSWORDS

    def __repr__(self) -> str:
        return f"<Slapd {self.url} {self.ldaps_url}>"

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.certs.ca_cert

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def start(self, timeout: float = 15.0) -> None:
        """Start (or restart, same ports and data) and wait until it answers a search."""
        self.process.start()
        self.process.wait_ready(self._ready, timeout=timeout)

    def stop(self) -> None:
        self.resume()  # a stopped process would sit on SIGTERM until SIGKILL
        self.process.stop()

    def pause(self) -> None:
        """Freeze slapd: connections are still accepted by the kernel, nothing is answered."""
        if self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process.running and self.process.pid is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def modify(self, ldif_text: str) -> str:
        """Apply an LDIF change (``changetype: ...`` records) as the root DN with ldapmodify."""
        return self._as_root("ldapmodify", input=ldif_text)

    def search(self, base: str, ldap_filter: str, *attrs: str) -> str:
        """``ldapsearch -LLL`` as the root DN, for a test's own checks."""
        return self._as_root("ldapsearch", "-LLL", "-b", base, ldap_filter, *attrs)

    def binds(self, dn: str | None = None) -> int:
        """BIND requests in the log so far (all of them, or those for ``dn``, case-insensitive).

        slapd writes the line before it answers, so a bind that returned is already counted.
        """
        text = self.log_path.read_text(errors="replace")
        found = [m["dn"] for m in _BIND.finditer(text)]
        if dn is None:
            return len(found)
        return sum(1 for name in found if name.casefold() == dn.casefold())

    def close(self) -> None:
        self.stop()

    def _as_root(self, tool: str, *args: str, input: str | None = None) -> str:
        with tempfile.NamedTemporaryFile("w", dir=self.workdir, suffix=".pw") as pw:
            pw.write(self.root_password)
            pw.flush()
            argv = [find_program(tool), "-x", "-H", self.url, "-D", self.root_dn, "-y", pw.name, *args]
            return run_command(argv, input=input, timeout=30.0).stdout

    def _ready(self) -> bool:
        # Anonymous, on the root DSE: its bind has dn="", so it never counts for an account.
        argv = [find_program("ldapsearch"), "-x", "-LLL", "-o", "nettimeout=2", "-H", self.url,
                "-b", "", "-s", "base", "namingContexts"]
        return run_command(argv, check=False, timeout=5.0).returncode == 0


def _write_config(workdir: Path, certs: TestCertificates) -> Path:
    for schema in SCHEMAS:
        if not (SCHEMA_DIR / f"{schema}.schema").is_file():
            raise StartupError(f"{SCHEMA_DIR}/{schema}.schema missing: install slapd (scripts/setup)")
    includes = "\n".join(f"include {SCHEMA_DIR}/{schema}.schema" for schema in SCHEMAS)
    conf = workdir / "slapd.conf"
    conf.write_text(_CONF.format(
        includes=includes, module_dir=MODULE_DIR, workdir=workdir, ca=certs.ca_cert,
        cert=certs.server_cert, key=certs.server_key, base=BASE_DN, root_dn=ROOT_DN,
        root_password=ROOT_PASSWORD, service_dn=SERVICE_DN))
    return conf


def start_slapd(workdir: Path, *, timeout: float = 15.0, attempts: int = 3) -> Slapd:
    """Load people.ldif into a fresh directory under ``workdir`` and start slapd on free ports."""
    workdir.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(workdir / "tls", dns_name="localhost")
    conf = _write_config(workdir, certs)
    (workdir / "data").mkdir(exist_ok=True)
    run_command([find_program("slapadd"), "-q", "-f", str(conf), "-l", str(LDIF)], timeout=60.0)
    for attempt in range(attempts):
        port, tls_port = free_port(), free_port()
        urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
        argv = [find_program("slapd"), "-d", "stats", "-f", str(conf), "-h", urls]
        process = ManagedProcess("slapd", argv, log_path=workdir / "slapd.log", cwd=workdir)
        server = Slapd(workdir, port, tls_port, certs, process)
        try:
            server.start(timeout=timeout)
            return server
        except StartupError as exc:
            with contextlib.suppress(Exception):
                server.stop()
            if attempt + 1 < attempts and "address already in use" in str(exc).lower():
                continue
            raise
    raise AssertionError("unreachable")
