"""A step-by-step model of the Lamport push protocol on several ranks, for CPU tests.

Each rank runs the same calls as the CUDA kernels, built from the same functions of
floorline.comm.protocol (buffer rotation, clearing, chunking, dirty extents). A call is a set of
"threads", each a short sequence of operations (push a packet to a peer, clear a packet, wait for a
packet); a random scheduler interleaves every thread of every rank. Reads check that the packet holds
exactly the value of this epoch (never a stale one); a state where no thread can move is a deadlock.

delayed_stores=True models the kernels' missing fences: a push or clear does not land when it is
issued but joins its rank's in-flight set, and the scheduler lands in-flight stores one at a time in any
order, interleaved with everything else. The only ordering kept is the kernel boundary: a rank's call
ends (and its next call starts, with the epoch bumped) only when all of its stores have landed
(drain_at_kernel_end=False drops that too, to show it is the assumption that matters).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from floorline.comm import protocol

EMPTY = None


class ProtocolViolation(AssertionError):
    pass


@dataclass
class Rank:
    epoch: int = 0
    dirty: list[int] = field(default_factory=lambda: [0] * protocol.N_BUFFERS)
    threads: list[list[tuple]] = field(default_factory=list)
    call: int = 0


class LamportSim:
    def __init__(self, world: int, slot_packets: int, n_buffers: int = protocol.N_BUFFERS,
                 buffer_of: Callable[[int], int] = protocol.buffer_index,
                 clear_of: Callable[[int], int] = protocol.clear_index, delayed_stores: bool = False,
                 drain_at_kernel_end: bool = True) -> None:
        self.world, self.nb = world, n_buffers
        self.delayed, self.drain = delayed_stores, drain_at_kernel_end
        self.inflight: list[list[tuple]] = [[] for _ in range(world)]  # (dst, buf, slot, packet, value)
        self.buffer_of, self.clear_of = buffer_of, clear_of
        # mem[rank][buf][slot][packet]
        self.mem = [[[[EMPTY] * slot_packets for _ in range(world)] for _ in range(n_buffers)] for _ in range(world)]
        self.ranks = [Rank(dirty=[0] * n_buffers) for _ in range(world)]
        self.reads = 0

    # one call's threads, as the kernel's grid would run them
    def _threads(self, r: int, alg: str, npk: int) -> list[list[tuple]]:
        st = self.ranks[r]
        return self._threads_at(r, alg, npk, st.epoch, st.dirty[self.clear_of(st.epoch)])

    def _threads_at(self, r: int, alg: str, npk: int, e: int, prev_dirty: int) -> list[list[tuple]]:
        w = self.world
        b, prev = self.buffer_of(e), self.clear_of(e)
        threads: list[list[tuple]] = []
        for s in range(w):
            for q in range(prev_dirty):
                threads.append([("clear", r, prev, s, q)])
        if alg == "fused_split":
            # allreduce_fused_rmsnorm_split on one row of npk packets: the thread of packet p pushes it to
            # every peer and copies its residual packet into our own slot r, then waits for the WHOLE row:
            # every peer's packets and every residual copy (made by other blocks' threads)
            for p in range(npk):
                ops = [("push", (r + k) % w, b, r, p, (e, "in", r, p)) for k in range(1, w)]
                ops.append(("push", r, b, r, p, (e, "res", r, p)))
                ops += [("wait", b, s, q, (e, "in", s, q)) for q in range(npk) for s in range(w) if s != r]
                ops += [("wait", b, r, q, (e, "res", r, q)) for q in range(npk)]
                threads.append(ops)
            return threads
        if alg in ("oneshot", "fused_cluster"):
            # allreduce_fused_rmsnorm_cluster moves data exactly like one-shot (the thread of packet p pushes
            # it and waits only for packet p of each peer); its row reduction goes through the cluster's
            # shared memory, outside the Lamport buffers
            for p in range(npk):
                ops = [("push", (r + k) % w, b, r, p, (e, "in", r, p)) for k in range(1, w)]
                ops += [("wait", b, s, p, (e, "in", s, p)) for s in range(w) if s != r]
                threads.append(ops)
        else:
            chunk = protocol.twoshot_chunk(npk, w)
            for p in range(npk):
                o = protocol.owner(p, npk, w)
                threads.append([("push", o, b, r, p - o * chunk, (e, "in", r, p))])
            lo, hi = protocol.chunk_range(r, npk, w)
            for p in range(lo, hi):
                ops = [("wait", b, s, p - lo, (e, "in", s, p)) for s in range(w)]
                ops += [("push", (r + k) % w, b, r, chunk + p - lo, (e, "red", r, p)) for k in range(1, w)]
                threads.append(ops)
            for p in range(npk):
                o = protocol.owner(p, npk, w)
                if o != r:
                    threads.append([("wait", b, o, chunk + p - o * chunk, (e, "red", o, p))])
        return threads

    def _step(self, r: int, t: list[tuple]) -> bool:
        """Run thread t's next op on rank r; False if it must wait."""
        op = t[0]
        if op[0] == "push":
            _, dst, b, slot, q, val = op
            self._store(r, (dst, b, slot, q, val))
        elif op[0] == "clear":
            _, _, b, slot, q = op
            self._store(r, (r, b, slot, q, EMPTY))
        else:
            _, b, slot, q, want = op
            got = self.mem[r][b][slot][q]
            if got is EMPTY:
                return False
            if got != want:
                raise ProtocolViolation(f"rank {r} read {got} at buf {b} slot {slot} packet {q}, expected {want}")
            self.reads += 1
        t.pop(0)
        return True

    def _store(self, r: int, st: tuple) -> None:
        if self.delayed:
            self.inflight[r].append(st)
        else:
            dst, b, slot, q, val = st
            self.mem[dst][b][slot][q] = val

    def _land(self, r: int, i: int) -> None:
        dst, b, slot, q, val = self.inflight[r].pop(i)
        self.mem[dst][b][slot][q] = val

    def run(self, calls: list[tuple[str, int]], rng: random.Random, max_steps: int = 10**7) -> None:
        for r in range(self.world):
            self.ranks[r].threads = self._threads(r, *calls[0])
        done = [False] * self.world
        for _ in range(max_steps):
            if all(done) and not any(self.inflight):
                return
            movable: list[tuple[int, list[tuple] | None]] = []
            for r, st in enumerate(self.ranks):
                if self.inflight[r]:
                    movable.append((r, None))  # land one of r's in-flight stores
                if done[r]:
                    continue
                for t in st.threads:
                    if t and (t[0][0] != "wait" or self.mem[r][t[0][1]][t[0][2]][t[0][3]] is not EMPTY):
                        movable.append((r, t))
            if all(done) and not movable:
                return
            if not movable:
                raise ProtocolViolation(f"deadlock: ranks at calls {[s.call for s in self.ranks]}")
            # skew: a random rank moves first more often, so ranks drift apart by whole calls
            r, t = rng.choice(movable) if rng.random() < 0.5 else min(movable, key=lambda m: (m[0] != 0, rng.random()))
            if t is None:
                self._land(r, rng.randrange(len(self.inflight[r])))
            else:
                self._step(r, t)
            st = self.ranks[r]
            st.threads = [x for x in st.threads if x]
            if not st.threads and not done[r] and not (self.drain and self.inflight[r]):
                alg, npk = calls[st.call]
                st.dirty[self.buffer_of(st.epoch)] = protocol.dirty_packets(alg, npk, self.world)
                st.epoch += 1
                st.call += 1
                if st.call == len(calls):
                    done[r] = True
                else:
                    st.threads = self._threads(r, *calls[st.call])
        raise ProtocolViolation("step budget exhausted")


@dataclass
class Block:
    state: str = "start"  # start (epoch not read yet) -> run -> done
    epoch: int = -1
    threads: list[list[tuple]] = field(default_factory=list)


class ReplicatedSim(LamportSim):
    """The replicated-epoch scheme (CommConfig(epoch='replicated')): no rank-wide epoch word and no
    arrival ticket. Each call runs on a grid of G blocks (G from the message size, the same on every rank,
    different from call to call). Block b reads its own epoch copy rep[b] when it starts (a separate,
    randomly scheduled step, so a block may start long after its siblings finished), together with the
    dirty word of the buffer it clears; every thread of the call (the same threads LamportSim builds)
    belongs to one block; when all of a block's threads are done (its __syncthreads) it writes
    epoch + 1 into the copies `writes_of(b, G, threads_per_block, n_replicas)` and block 0 writes the
    dirty word of its buffer. writes_of defaults to protocol.replica_writes (the kernel's loop); tests pass
    broken ones to show the model catches them."""

    def __init__(self, world: int, slot_packets: int, n_replicas: int = 5, threads_per_block: int = 2,
                 grid_of: Callable[[int], int] | None = None,
                 writes_of: Callable[[int, int, int, int], list[int]] | None = None, **kw) -> None:
        super().__init__(world, slot_packets, **kw)
        self.n_rep, self.tpb = n_replicas, threads_per_block
        self.grid_of = grid_of or (lambda npk: 1 + npk % n_replicas)
        self.writes_of = writes_of or protocol.replica_writes
        self.rep = [[0] * n_replicas for _ in range(world)]
        self.blocks: list[list[Block]] = [[] for _ in range(world)]

    def _start_call(self, r: int, calls: list[tuple[str, int]]) -> None:
        g = self.grid_of(calls[self.ranks[r].call][1])
        if not 1 <= g <= self.n_rep:
            raise ValueError(f"grid {g} outside 1..{self.n_rep}")
        self.blocks[r] = [Block() for _ in range(g)]

    def _begin(self, r: int, b: int, calls: list[tuple[str, int]]) -> None:
        blk, st = self.blocks[r][b], self.ranks[r]
        alg, npk = calls[st.call]
        e = self.rep[r][b]
        everything = self._threads_at(r, alg, npk, e, st.dirty[self.clear_of(e)])
        g = len(self.blocks[r])
        blk.epoch, blk.state = e, "run"
        blk.threads = [t for i, t in enumerate(everything) if i % g == b]

    def _end(self, r: int, b: int, calls: list[tuple[str, int]]) -> None:
        blk, st = self.blocks[r][b], self.ranks[r]
        g = len(self.blocks[r])
        for i in self.writes_of(b, g, self.tpb, self.n_rep):
            self.rep[r][i] = blk.epoch + 1
        if b == 0:
            alg, npk = calls[st.call]
            st.dirty[self.buffer_of(blk.epoch)] = protocol.dirty_packets(alg, npk, self.world)
        blk.state = "done"

    def run(self, calls: list[tuple[str, int]], rng: random.Random, max_steps: int = 10**7) -> None:
        for r in range(self.world):
            self._start_call(r, calls)
        done = [False] * self.world
        for _ in range(max_steps):
            if all(done) and not any(self.inflight):
                return
            movable: list[tuple[int, str, int, list[tuple] | None]] = []
            for r in range(self.world):
                if self.inflight[r]:
                    movable.append((r, "land", -1, None))
                if done[r]:
                    continue
                for b, blk in enumerate(self.blocks[r]):
                    if blk.state == "start":
                        movable.append((r, "begin", b, None))
                    elif blk.state == "run" and not blk.threads:
                        movable.append((r, "end", b, None))
                    elif blk.state == "run":
                        for t in blk.threads:
                            if t[0][0] != "wait" or self.mem[r][t[0][1]][t[0][2]][t[0][3]] is not EMPTY:
                                movable.append((r, "step", b, t))
            if all(done) and not movable:
                return
            if not movable:
                raise ProtocolViolation(f"deadlock: ranks at calls {[s.call for s in self.ranks]}")
            r, kind, b, t = (rng.choice(movable) if rng.random() < 0.5
                             else min(movable, key=lambda m: (m[0] != 0, rng.random())))
            if kind == "land":
                self._land(r, rng.randrange(len(self.inflight[r])))
            elif kind == "begin":
                self._begin(r, b, calls)
            elif kind == "end":
                self._end(r, b, calls)
            else:
                self._step(r, t)
                blk = self.blocks[r][b]
                blk.threads = [x for x in blk.threads if x]
            st = self.ranks[r]
            if (not done[r] and all(k.state == "done" for k in self.blocks[r])
                    and not (self.drain and self.inflight[r])):
                st.epoch += 1
                st.call += 1
                if st.call == len(calls):
                    done[r] = True
                else:
                    self._start_call(r, calls)
        raise ProtocolViolation("step budget exhausted")
