"""redis-py against the real binary: RESP3 by default (redis-py 8), RESP2 on request."""

import threading

import pytest
import redis


@pytest.fixture(params=[3, 2], ids=["resp3", "resp2"])
def client(request, server):
    c = redis.Redis(host="127.0.0.1", port=server.port, protocol=request.param)
    yield c
    c.close()


def test_default_client_speaks_resp3_and_handshakes(server):
    c = redis.Redis(host="127.0.0.1", port=server.port)
    assert c.ping() is True
    hello = c.execute_command("HELLO", 3)
    assert {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"} <= set(hello)
    assert hello[b"proto"] == 3
    # redis-py 8 sends CLIENT SETINFO on connect; it must have been accepted.
    info = c.client_info()
    assert info["lib-name"].startswith("redis-py")


def test_strings_and_counters(client):
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert client.set("k", "w", nx=True) is None
    assert client.set("k", "w", xx=True, get=True) == b"v"
    assert client.incr("n") == 1
    assert client.incrby("n", 41) == 42
    assert client.decr("n") == 41
    assert client.decrby("n", 40) == 1
    assert client.append("k", "xyz") == 4
    assert client.strlen("k") == 4
    assert client.mget("k", "missing", "n") == [b"wxyz", None, b"1"]
    assert client.exists("k", "k", "missing") == 2
    assert client.dbsize() == 2
    assert client.delete("k", "missing") == 1
    assert client.flushall() is True
    assert client.dbsize() == 0


def test_errors_are_redis_errors(client):
    client.set("s", "abc")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        client.incr("s")
    with pytest.raises(redis.ResponseError, match="keys do not expire"):
        client.set("t", "v", ex=10)
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
        client.execute_command("NOPE", "x")
    assert client.get("s") == b"abc"


def test_binary_values(client):
    value = bytes(range(256)) * 10
    client.set(b"\x00\xff", value)
    assert client.get(b"\x00\xff") == value


def test_pipeline_and_transaction_free_batches(client):
    pipe = client.pipeline(transaction=False)
    for _ in range(100):
        pipe.incr("ctr")
    assert pipe.execute() == list(range(1, 101))


def test_info_and_client_commands(client):
    info = client.info()
    assert info["valthree_version"]
    assert info["mode"] == "s3"
    assert client.info("valthree")["s3_batch"] == "on"
    client.client_setname("worker-1")
    assert client.client_getname() in (b"worker-1", "worker-1")
    assert isinstance(client.client_id(), int)


def test_concurrent_incr_from_threads_is_exact(server):
    def work():
        c = redis.Redis(host="127.0.0.1", port=server.port)
        for _ in range(50):
            c.incr("shared")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(redis.Redis(host="127.0.0.1", port=server.port).get("shared")) == 400


def test_auth(server_with_password):
    port = server_with_password.port
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, password="wrong").ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).get("k")
    c = redis.Redis(host="127.0.0.1", port=port, password="hunter2")
    assert c.set("k", "v") is True
    assert c.get("k") == b"v"


def test_compare_and_set_as_redis_8_4_documents_it(client):
    """redis-py's own spelling of Redis 8.4's SET IF*, DIGEST and DELEX, and Valkey's DELIFEQ."""
    assert client.set("k", "Hello world") is True
    # The example of Redis 8.4's DIGEST page.
    assert client.digest("k") == b"b6acb9d84a38ff74"
    assert client.digest("missing") is None
    digest = client.digest("k").decode()
    assert client.set("k", "v2", ifeq="nope") is None
    assert client.set("k", "v2", ifeq="Hello world") is True
    assert client.set("k", "v3", ifne="v2") is None
    assert client.set("k", "v3", ifdeq=digest) is None
    assert client.set("k", "v3", ifdne=digest, get=True) == b"v2"
    assert client.set("fresh", "x", ifeq="x") is None
    assert client.exists("fresh") == 0
    assert client.set("fresh", "x", ifne="x") is True
    with pytest.raises(redis.ResponseError, match="syntax error"):
        client.execute_command("SET", "k", "v", "IFEQ", "a", "NX")
    assert client.delex("k", ifeq="v2") == 0
    assert client.delex("k", ifdeq=client.digest("k").decode()) == 1
    # redis/redis#14496's value: its digest keeps its four leading zeros, any case matches,
    # and the digest without them is refused as Redis 8.4 refuses it.
    zeros = "v8lf0c11xh8ymlqztfd3eeq16kfn4sspw7fqmnuuq3k3t75em5wdizgcdw7uc26nnf961u2jkfzkjytls2kwlj7626sd"
    client.set("z", zeros)
    assert client.digest("z") == b"00006c38adf31777"
    with pytest.raises(redis.ResponseError, match="must be exactly 16 hexadecimal characters"):
        client.delex("z", ifdeq="6c38adf31777")
    assert client.set("z", "x", ifdne="00006C38ADF31777") is None
    assert client.delex("z", ifdeq="00006C38ADF31777") == 1
    assert client.delex("fresh", ifne="y") == 1
    assert client.delex("missing") == 0
    client.set("lock", "token")
    assert client.execute_command("DELIFEQ", "lock", "other") == 0
    assert client.execute_command("DELIFEQ", "lock", "token") == 1
    assert client.dbsize() == 0


def test_older_string_commands(client):
    assert client.setnx("a", "1") is True
    assert client.setnx("a", "2") is False
    assert client.getset("a", "3") == b"1"
    assert client.getdel("a") == b"3"
    assert client.getdel("a") is None
    assert client.mset({"x": "1", "y": "2"}) is True
    assert client.msetnx({"y": "9", "z": "9"}) is False
    assert client.msetnx({"z": "3", "w": "4"}) is True
    assert client.mget("x", "y", "z", "w") == [b"1", b"2", b"3", b"4"]


def test_scan_iter_and_keys(client):
    users = {f"user:{i}".encode() for i in range(120)}
    for i, key in enumerate(sorted(users)):
        client.set(key, i)
    client.set("order:1", "x")
    client.set(b"user:\xff", "binary")
    seen = list(client.scan_iter(match="user:*", count=7))
    assert len(seen) == len(set(seen)), "a key that stayed put was listed twice"
    assert set(seen) == users | {b"user:\xff"}
    assert set(client.keys("user:1?")) == {f"user:1{d}".encode() for d in range(10)}
    assert list(client.scan_iter(_type="hash")) == []
    cursor, page = client.scan(0, count=5)
    assert isinstance(cursor, int) and cursor != 0 and page
