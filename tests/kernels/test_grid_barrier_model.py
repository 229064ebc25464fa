"""A CPU model of moe_b1_persistent's grid barrier (the protocol of its module docstring), run over many
calls with random interleavings of the programs' steps. The Triton interpreter cannot run the barrier
(it runs programs one after another), so this is where the protocol itself is checked: nobody passes
before the whole grid has arrived, ARRIVE is back at 0 after each call, GEN moves once per call and may
start anywhere (wrap included). Two broken variants must fail: reading gen0 after arriving (the last
arrival can bump GEN first and that program spins forever), and a last arrival that does not put
ARRIVE back to 0 (the next call's count never reaches its last arrival)."""

from __future__ import annotations

import random

import pytest

from floorline.kernels.moe_b1_persistent import ARRIVE, GEN

MASK = 2**32 - 1


def run_calls(grid: int, calls: int, seed: int, gen_start: int, variant: str = "kernel") -> list[int]:
    """Each program is a generator of atomic steps on the shared words; a random scheduler picks which
    program steps next. Calls follow one another (the kernel boundary). Returns GEN after each call."""
    mem = {ARRIVE: 0, GEN: gen_start}
    rng = random.Random(seed)
    gens = []
    for _ in range(calls):
        arrived = [0]
        passed: list[int] = []

        def program(pid: int, arrived: list[int] = arrived, passed: list[int] = passed):
            if variant != "late_gen0":
                gen0 = mem[GEN]
                yield
            a = mem[ARRIVE]
            mem[ARRIVE] = a + 1  # one atomic step
            arrived[0] += 1
            yield
            if variant == "late_gen0":
                gen0 = mem[GEN]
                yield
            if a == grid - 1:
                if variant != "no_reset":
                    mem[ARRIVE] = 0
                    yield
                mem[GEN] = (mem[GEN] + 1) & MASK
                yield
            spins = 0
            while mem[GEN] == gen0:
                spins += 1
                if spins > 10_000:
                    raise TimeoutError(f"program {pid} never saw GEN move")
                yield
            # a program that gets here must find the whole grid arrived
            assert arrived[0] == grid, f"program {pid} passed with {arrived[0]} of {grid} arrived"
            passed.append(pid)

        live = [program(p) for p in range(grid)]
        while live:
            g = rng.choice(live)
            try:
                next(g)
            except StopIteration:
                live.remove(g)
        assert sorted(passed) == list(range(grid))
        assert mem[ARRIVE] == 0
        gens.append(mem[GEN])
    return gens


@pytest.mark.parametrize("grid", [1, 2, 7, 33])
@pytest.mark.parametrize("gen_start", [0, 12345, MASK - 2])
def test_barrier_protocol_holds_over_calls(grid: int, gen_start: int) -> None:
    for seed in range(5):
        gens = run_calls(grid, calls=6, seed=seed, gen_start=gen_start)
        assert gens == [(gen_start + i + 1) & MASK for i in range(6)]  # once per call, wrapping


def test_reading_gen0_after_arriving_can_hang() -> None:
    with pytest.raises(TimeoutError):
        for seed in range(50):
            run_calls(7, calls=4, seed=seed, gen_start=0, variant="late_gen0")


def test_a_last_arrival_that_keeps_the_count_breaks_the_next_call() -> None:
    with pytest.raises((TimeoutError, AssertionError)):
        run_calls(7, calls=2, seed=0, gen_start=0, variant="no_reset")
