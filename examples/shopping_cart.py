"""The Dynamo paper's shopping cart, on valthree's dynamo mode with redis-py.

Two shoppers add to one cart at the same time through different nodes. Neither write is
lost: the cart comes back with two siblings, which the next reader merges (the union of the
items) and writes back with the context it read, so the merge supersedes both.

    valthree cluster up --mode dynamo --nodes 3           # client ports 6380, 6381, 6382
    .venv/bin/python examples/shopping_cart.py [port ...]
"""

import sys

import redis


def read_cart(r: redis.Redis, key: str):
    """The cart's context and the item sets of its siblings (a delete reads as an empty cart)."""
    context, *siblings = r.execute_command("VGET", key)
    return context, [set(s.split(",")) if s else set() for s in siblings if s is not None]


def add_item(r: redis.Redis, key: str, item: str, seen=None):
    """Adds `item` to the cart as this shopper last read it (`seen`: context and items)."""
    context, siblings = seen if seen is not None else read_cart(r, key)
    items = set().union(*siblings) | {item}
    new_context, dot = r.execute_command("VSET", key, ",".join(sorted(items)), context)
    return new_context, dot


def merge_cart(r: redis.Redis, key: str):
    """Reads every sibling, merges them (union), and writes the merge back with the context."""
    context, siblings = read_cart(r, key)
    merged = set().union(*siblings) if siblings else set()
    r.execute_command("VSET", key, ",".join(sorted(merged)), context)
    return merged, len(siblings)


def main(ports):
    nodes = [redis.Redis(host="127.0.0.1", port=p, decode_responses=True) for p in ports]
    key = "cart:alice"
    nodes[0].execute_command("VDEL", key, read_cart(nodes[0], key)[0])
    add_item(nodes[0], key, "milk")
    # Both shoppers read the cart with milk in it, then add at the same time via two nodes.
    seen = read_cart(nodes[0], key)
    add_item(nodes[0], key, "eggs", seen)
    add_item(nodes[1 % len(nodes)], key, "bread", seen)
    context, siblings = read_cart(nodes[-1], key)
    print(f"siblings after two concurrent adds: {[sorted(s) for s in siblings]}")
    merged, had = merge_cart(nodes[-1], key)
    print(f"merged {had} siblings into {sorted(merged)}")
    _, after = read_cart(nodes[0], key)
    print(f"the cart now: {[sorted(s) for s in after]}")
    return merged, had, after


if __name__ == "__main__":
    main([int(p) for p in sys.argv[1:]] or [6380, 6381, 6382])
