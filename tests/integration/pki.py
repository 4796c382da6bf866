"""Throwaway certificates for TLS tests, made with the openssl command in a
temp dir: CAs, server certificates for 127.0.0.1, client certificates
(also expired ones: OpenSSL 3.0 has no -not_after, so those go through
`openssl ca` with -startdate/-enddate and a minimal CA config).

    ca = CA(tmp_path, "ca")
    srv = ca.issue("srv", "127.0.0.1", sans=["IP:127.0.0.1", "DNS:localhost"], server=True)
    cli = ca.issue("alice", "alice", client=True)
    old = ca.issue("old", "alice", client=True, expired=True)
    srv.cert, srv.key, ca.cert  # paths (str)
"""
import os
import subprocess
from dataclasses import dataclass


def openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"
    return r.stdout


@dataclass
class Issued:
    cert: str
    key: str
    serial: int


class CA:
    """A self-signed P-256 CA in dir/name/."""

    def __init__(self, base, name):
        self.dir = os.path.join(str(base), name)
        os.makedirs(self.dir)
        self.name = name
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.key, "-out", self.cert, "-days", "30", "-subj", f"/CN={name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.next_serial = 1000

    def issue(self, name, cn, sans=(), server=False, client=False, serial=None, expired=False):
        """A leaf certificate and its key (unencrypted, PEM)."""
        serial = serial or self.next_serial
        self.next_serial = max(self.next_serial, serial) + 1
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        cert = os.path.join(self.dir, f"{name}.pem")
        ext = os.path.join(self.dir, f"{name}.ext")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        usage = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        with open(ext, "w") as f:
            f.write("[ext]\nbasicConstraints=CA:FALSE\n")
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
            if usage:
                f.write("extendedKeyUsage=" + ",".join(usage) + "\n")
        if not expired:
            openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                    "-set_serial", str(serial), "-days", "30", "-extfile", ext,
                    "-extensions", "ext", "-out", cert)
        else:
            self._ca_sign(csr, ext, cert, serial)
        return Issued(cert, key, serial)

    def _ca_sign(self, csr, ext, cert, serial):
        """`openssl ca` with fixed dates in the past: an expired certificate."""
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        open(os.path.join(db, "index.txt"), "a").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write(f"{serial:x}\n" if len(f"{serial:x}") % 2 == 0 else f"0{serial:x}\n")
        cnf = os.path.join(self.dir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write(f"[ca]\ndefault_ca=d\n[d]\ndatabase={db}/index.txt\nnew_certs_dir={db}\n"
                    f"serial={db}/serial\ndefault_md=sha256\npolicy=p\n"
                    "unique_subject=no\n[p]\ncommonName=supplied\n")
        openssl("ca", "-batch", "-config", cnf, "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", cert, "-startdate", "20190101000000Z",
                "-enddate", "20200101000000Z", "-extfile", ext, "-extensions", "ext", "-notext")
