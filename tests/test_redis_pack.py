"""workers.redis_pack: the same bytes on the wire as redis-py's own packing, and a real Valkey reads them back."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis
from redis.exceptions import DataError

from workers.redis_pack import one_pass_packing


def _connections():
    plain = aioredis.Connection()
    fast = one_pass_packing(aioredis.Redis()).connection_pool.make_connection()
    assert type(fast) is not aioredis.Connection and isinstance(fast, aioredis.Connection)
    return plain, fast


def _random_arg(rng: random.Random, cutoff: int):
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randint(-10**12, 10**12)
    if kind == 1:
        return rng.uniform(-1e6, 1e6)
    if kind == 2:
        return "".join(rng.choice("aé€😀 \r\n:") for _ in range(rng.randrange(40)))
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if kind == 4:
        return "x" * rng.randrange(cutoff - 5, cutoff + 5)       # around the cutoff
    if kind == 5:
        return memoryview(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50))))
    if kind == 6:
        return bytearray(b"ba" * rng.randrange(10))
    return "y" * rng.randrange(cutoff, 3 * cutoff)               # a large value (the call state)


def test_packing_is_byte_identical_to_redis_py():
    plain, fast = _connections()
    rng = random.Random(16)
    names = ["HSET", "XADD", "CONFIG GET", b"CLIENT SETNAME", b"EXPIRE"]
    for _ in range(500):
        args = [rng.choice(names)] + [_random_arg(rng, plain._buffer_cutoff) for _ in range(rng.randrange(0, 120))]
        a, b = plain.pack_command(*args), fast.pack_command(*args)
        assert b"".join(map(bytes, a)) == b"".join(map(bytes, b))
        assert plain.pack_commands([args, args[:3]]) and b"".join(map(bytes, plain.pack_commands([args, args[:3]]))) == \
            b"".join(map(bytes, fast.pack_commands([args, args[:3]])))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_values_redis_py_refuses_are_refused(bad):
    plain, fast = _connections()
    with pytest.raises(DataError):
        plain.pack_command("SET", "k", bad)
    with pytest.raises(DataError):
        fast.pack_command("SET", "k", bad)


def test_a_pipelined_batch_round_trips_through_valkey(stack):
    fields = {"call_id": "c-é", "risk": "0.25", "_state": "s" * 20_000, "n": 7, "f": 0.5, "b": b"\x00\xff"}

    async def main():
        client = one_pass_packing(aioredis.from_url(stack.redis_url))
        try:
            pipe = client.pipeline(transaction=True)
            pipe.hset("cp:call:x", mapping=fields)
            pipe.xadd("cp:timeline:x", {"t": "1", "leg": "agent"}, maxlen=10, approximate=True)
            pipe.expire("cp:call:x", 60)
            await pipe.execute()
            return await client.hgetall("cp:call:x"), await client.xlen("cp:timeline:x"), await client.ttl("cp:call:x")
        finally:
            await client.aclose()

    got, xlen, ttl = asyncio.run(main())
    assert got == {k.encode(): (v if isinstance(v, bytes) else str(v).encode()) for k, v in fields.items()}
    assert xlen == 1 and 0 < ttl <= 60
