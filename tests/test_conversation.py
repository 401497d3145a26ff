import numpy as np

from workers.conversation import Conversation


def m(spec: str) -> np.ndarray:
    return np.array([c == "1" for c in spec])


def run(conv, agent: str, customer: str):
    out = []
    for i in range(0, len(agent), 50):
        out.append(conv.step(m(agent[i:i + 50]), m(customer[i:i + 50])))
    return out


def test_overtalk_silence_and_longest_silence_across_steps():
    c = Conversation()
    agent = "1" * 40 + "0" * 110 + "1" * 50
    cust = "0" * 30 + "1" * 20 + "0" * 150
    out = run(c, agent, cust)
    assert c.overtalk_frames == 10
    assert c.silence_frames == 100
    assert c.longest_silence == 100
    assert [o["silence"] for o in out] == [0, 1, 1, 0]
    assert out[1]["silence_run_s"] == 1.0


def test_interruption_needs_a_real_overlap_and_backchannel_does_not_count():
    c = Conversation()
    agent = "1" * 100 + "1" * 50
    # customer: short back-channel (10 frames = 200 ms) inside the agent's turn, then a real barge-in
    cust = "0" * 60 + "1" * 10 + "0" * 30 + "0" * 10 + "1" * 40
    run(c, agent, cust)
    assert c.interruptions == [0, 1]
    assert c.turns == [1, 2]


def test_state_round_trip_mid_interruption():
    c = Conversation()
    run(c, "1" * 50, "0" * 45 + "1" * 5)
    d = Conversation.from_dict(c.to_dict())
    run(c, "1" * 50, "1" * 50)
    run(d, "1" * 50, "1" * 50)
    assert c.to_dict() == d.to_dict()
    assert c.interruptions == [0, 1]
