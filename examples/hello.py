"""A first conversation with valthree through redis-py (RESP3 by default).

    valthree serve &
    .venv/bin/python examples/hello.py [port]    # the venv ./scripts/test makes; or: pip install redis
"""

import sys

import redis

port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)

r.set("greeting", "hello from valthree")
print("GET greeting ->", r.get("greeting"))
print("INCR visits  ->", r.incr("visits"))
print("mode         ->", r.info("valthree")["mode"])
try:
    r.incr("greeting")
except redis.ResponseError as e:
    print("INCR greeting -> error:", e)
