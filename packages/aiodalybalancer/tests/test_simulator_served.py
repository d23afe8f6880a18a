"""The simulator's record of what it answered: the soak's ground truth (issue: "Fault-injection soak")."""

from __future__ import annotations

from aiodalybalancer.frames import Direction, ReadRequest, parse
from aiodalybalancer.registers import BALANCER, LIVE
from aiodalybalancer.tools.simulator import (
    Fault,
    FaultPlan,
    ServedRead,
    SimulatedBalancer,
    SimulatorConfig,
)


def test_served_reads_are_recorded_when_asked_even_if_the_reply_is_then_lost() -> None:
    """With ``served`` set, every read answer is recorded with the words the module reported at
    that moment, also when a fault then drops the bytes; without it nothing is kept."""
    clock = {"now": 0.0}
    sim = SimulatedBalancer(SimulatorConfig(cells=8, seed=4), clock=lambda: clock["now"])
    sim.receive(ReadRequest(LIVE.start, LIVE.count).encode())
    assert sim.served is None

    sim.served = []
    sim.faults = FaultPlan(rate=1.0, kinds=(Fault.DROP,))
    assert sim.receive(ReadRequest(LIVE.start, LIVE.count).encode()) == []
    clock["now"] = 30.0
    words_now = tuple(sim.words[BALANCER.start : BALANCER.end])
    sim.faults = FaultPlan()
    (reply,) = sim.receive(ReadRequest(BALANCER.start, BALANCER.count).encode())
    assert len(sim.served) == 2
    first, second = sim.served
    assert isinstance(first, ServedRead)
    assert (first.start, len(first.words), first.time) == (LIVE.start, LIVE.count, 0.0)
    assert second == ServedRead(30.0, BALANCER.start, words_now)
    assert parse(reply.data, Direction.RESPONSE).values == words_now  # type: ignore[attr-defined]
