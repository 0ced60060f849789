"""redis-py over TLS against valthree's --tls-port (certificates made with the openssl tool)."""

import subprocess

import redis

from conftest import Server, free_port


def make_certificates(d):
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=valthree test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=server")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")


def test_redis_py_over_tls(tmp_path):
    make_certificates(tmp_path)
    tls_port = free_port()
    s = Server(tmp_path, "--tls-port", f"127.0.0.1:{tls_port}",
               "--tls-cert-file", str(tmp_path / "server.crt"), "--tls-key-file", str(tmp_path / "server.key"))
    try:
        r = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.crt"),
                        decode_responses=True)
        assert r.set("greeting", "hello over tls")
        assert r.get("greeting") == "hello over tls"
        assert r.incr("n") == 1
        plain = redis.Redis(host="127.0.0.1", port=s.port, decode_responses=True)
        assert plain.get("greeting") == "hello over tls"
    finally:
        s.stop()
