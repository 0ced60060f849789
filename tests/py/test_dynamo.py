"""redis-py against a 3-node dynamo cluster (real processes, `valthree cluster up`), and the
shopping-cart example run as its users would."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import redis

from conftest import ROOT, binary, free_port


def cluster(dir_: Path, *args: str) -> dict:
    out = subprocess.run([binary(), "cluster", "--dir", str(dir_), "--json", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


@pytest.fixture
def dynamo(tmp_path):
    # A base port whose client (base+1..3) and peer (base+1001..) ports are free: `up`
    # refuses a taken one and leaves nothing behind, so try a few.
    for _ in range(20):
        base = free_port() // 10 * 10
        if base + 1003 >= 65535:
            continue
        out = subprocess.run(
            [binary(), "cluster", "--dir", str(tmp_path / "c"), "--json", "up", "--mode", "dynamo", "--nodes", "3",
             "--base-port", str(base)],
            capture_output=True, text=True,
        )
        if out.returncode == 0:
            status = json.loads(out.stdout)
            break
        said = out.stdout + out.stderr
        # A port in use, or held only by closed connections in TIME-WAIT (free_port's ports
        # are in the kernel's range for outgoing connections): try another base.
        assert "is taken" in said or "TIME-WAIT" in said, said
    else:
        pytest.fail("no free ports for a 3-node cluster")
    ports = [int(n["addr"].rsplit(":", 1)[1]) for n in status["nodes"]]
    yield ports
    subprocess.run([binary(), "cluster", "--dir", str(tmp_path / "c"), "down", "--purge"], capture_output=True)


def test_plain_commands_work_and_read_modify_writes_are_refused(dynamo):
    a, b, c = (redis.Redis(port=p, decode_responses=True) for p in dynamo)
    assert a.set("user:1", "ada")
    assert b.get("user:1") == "ada"
    assert c.mget("user:1", "nope") == ["ada", None]
    assert a.exists("user:1", "nope") == 1
    assert b.delete("user:1", "nope") == 1
    assert c.get("user:1") is None
    with pytest.raises(redis.ResponseError, match="VGET"):
        a.incr("n")
    assert a.info("valthree")["mode"] == "dynamo"


def test_the_shopping_cart_keeps_both_concurrent_adds_and_merges_them(dynamo, capsys):
    spec = importlib.util.spec_from_file_location("shopping_cart", ROOT / "examples" / "shopping_cart.py")
    cart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cart)
    merged, siblings, after = cart.main(dynamo)
    assert siblings == 2, "neither concurrent add was lost"
    assert merged == {"milk", "eggs", "bread"}
    assert after == [{"milk", "eggs", "bread"}], "the merge superseded both siblings"
    assert "merged 2 siblings" in capsys.readouterr().out
