"""The reward: correctness is a gate, speed a bounded term.

Failures (reward <= 0, documented in docs/kernelenv.md):
  - an honest miss (compile_error, runtime_error, timeout, incorrect, nondeterministic): -0.5
  - any anti-hack class (the candidate gamed the harness): -1.0, so cheating never pays better than failing
Passes: 0.1 + 0.9 * clamp(0.5 + log2(speedup) / 6, 0, 1), in [0.1, 1.0]:
  speedup 1/8 or less -> 0.1, equal to the baseline -> 0.55, 8x or more -> 1.0. A pass with no timing
  (timing switched off) earns the floor of the pass range, 0.1.
"""

from __future__ import annotations

import math

HONEST_FAILURES = frozenset({"compile_error", "runtime_error", "timeout", "incorrect", "nondeterministic"})
HONEST_FAILURE_REWARD = -0.5
HACK_REWARD = -1.0
PASS_MIN = 0.1
SPEEDUP_SPAN_LOG2 = 3.0  # 8x either side of the baseline spans the pass range


def reward(failure_class: str | None, speedup: float | None) -> float:
    if failure_class is not None:
        return HONEST_FAILURE_REWARD if failure_class in HONEST_FAILURES else HACK_REWARD
    if speedup is None or not speedup > 0 or math.isinf(speedup):
        return PASS_MIN
    x = 0.5 + math.log2(speedup) / (2 * SPEEDUP_SPAN_LOG2)
    return PASS_MIN + (1 - PASS_MIN) * min(max(x, 0.0), 1.0)
