"""stream.kafka_server.new_cluster_id: one random id in 64 began with "-", and ``kafka-storage format -t`` then took
it for an option (seen once in CI: "argument --cluster-id/-t: expected one argument")."""

import uuid

from stream import kafka_server


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch):
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))   # 0b111110.. encodes as "-" in URL-safe base64
    assert kafka_server.base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    draws = iter([dashed, dashed, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka_server.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka_server.new_cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
