import pytest

from workers.kpis import compute_kpis

NOW = 1_764_028_800.0 + 12 * 3600   # noon UTC


def call(i, ended_ago, queue="billing", agent="a1", dur=100.0, start=0.0, end=0.0, mean=0.0, alerts=0, silence=10.0, overtalk=5.0):
    return {"call_id": f"c{i}", "queue": queue, "campaign": "winter", "agent_id": agent, "ended_at": NOW - ended_ago, "duration_s": dur,
            "customer_sentiment_start": start, "customer_sentiment_end": end, "customer_sentiment_mean": mean, "alerts": alerts,
            "silence_s": silence, "overtalk_s": overtalk}


def test_kpis_by_hand():
    calls = [
        call(1, 60, dur=120, start=0.1, end=-0.5, mean=-0.2, alerts=2, silence=12, overtalk=6),
        call(2, 600, dur=300, start=-0.4, end=0.3, mean=0.0, alerts=0, silence=30, overtalk=3),
        call(3, 2000, queue="sales", agent="a2", dur=200, start=None, end=None, mean=None, alerts=1, silence=20, overtalk=0),
        call(4, 5 * 3600, dur=60, start=0.0, end=0.0, mean=0.1),
    ]
    t = compute_kpis(calls, NOW)
    b = t[("queue", "billing")]
    assert b["15m.calls"] == 2
    assert b["15m.aht_s"] == pytest.approx(210.0)
    assert b["15m.sentiment_mean"] == pytest.approx(-0.1)
    assert b["15m.sentiment_end"] == pytest.approx(-0.1)
    assert b["15m.negative_share"] == pytest.approx(0.5)
    assert b["15m.improved_share"] == pytest.approx(0.5)        # call 2: -0.4 -> 0.3
    assert b["15m.alerts_per_100"] == pytest.approx(100.0)
    assert b["15m.silence_ratio"] == pytest.approx(42 / 420)
    assert b["15m.overtalk_rate"] == pytest.approx(9 / 420)
    assert b["1h.calls"] == 2 and b["today.calls"] == 3
    s = t[("queue", "sales")]
    assert s["1h.calls"] == 1 and "1h.sentiment_end" not in s and "1h.negative_share" not in s   # no sentiment: not a fake zero
    assert s["15m.calls"] == 0 and "15m.aht_s" not in s
    assert t[("all", "all")]["today.calls"] == 4
    assert t[("agent", "a2")]["1h.alerts_per_100"] == pytest.approx(100.0)


def test_window_boundaries_and_yesterday():
    calls = [call(1, 900, dur=10), call(2, 901, dur=10), call(3, 13 * 3600, dur=10)]   # the last ended yesterday
    row = compute_kpis(calls, NOW)[("all", "all")]
    assert row["15m.calls"] == 1 and row["1h.calls"] == 2 and row["today.calls"] == 2
