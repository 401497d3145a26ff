"""Turns and interruptions counted a stretch of unchanged frames at a time (issue 16) equal the frame-by-frame count."""

import numpy as np

from workers.conversation import _INTERRUPTED_AFTER, _MIN_OVERLAP, _TURN_GAP, Conversation


def reference_turns(conv: Conversation, agent: list[bool], customer: list[bool]) -> None:
    """The frame-by-frame algorithm as it was, kept here as the reference."""
    runs, turns, inter = conv.runs, conv.turns, conv.interruptions
    for a, c in zip(agent, customer):
        for i, speaking in ((0, a), (1, c)):
            other = runs[1 - i]
            if speaking:
                if runs[i] <= -_TURN_GAP:
                    turns[i] += 1
                    if other >= _INTERRUPTED_AFTER:
                        conv.candidate, conv.candidate_overlap = i, 0
                runs[i] = runs[i] + 1 if runs[i] > 0 else 1
            else:
                runs[i] = runs[i] - 1 if runs[i] < 0 else -1
        if conv.candidate >= 0:
            if a and c:
                conv.candidate_overlap += 1
                if conv.candidate_overlap >= _MIN_OVERLAP:
                    inter[conv.candidate] += 1
                    conv.candidate = -1
            else:
                conv.candidate = -1


def spurts(rng, n):
    """A leg's mask made of talk spurts and pauses of random lengths (some short enough to be back-channel)."""
    out, talking = [], bool(rng.random() < 0.5)
    while len(out) < n:
        out += [talking] * int(rng.integers(1, 60))
        talking = not talking
    return np.array(out[:n])


def test_stretch_counting_equals_frame_counting():
    rng = np.random.default_rng(7)
    checked = {"turns": 0, "interruptions": 0}
    for _ in range(300):
        fast, slow = Conversation(), Conversation()
        agent, customer = spurts(rng, 50 * 40), spurts(rng, 50 * 40)
        for k in range(40):
            a, c = agent[k * 50:(k + 1) * 50], customer[k * 50:(k + 1) * 50]
            fast._turns(a, c)
            reference_turns(slow, a.tolist(), c.tolist())
            state = lambda x: (x.runs, x.turns, x.interruptions, x.candidate, x.candidate_overlap)
            assert state(fast) == state(slow)
        checked["turns"] += sum(slow.turns)
        checked["interruptions"] += sum(slow.interruptions)
    assert checked["turns"] > 1000 and checked["interruptions"] > 100   # both paths were exercised
