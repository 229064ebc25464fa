"""Request traces: Mooncake JSONL and plain CSV/JSONL, translated once into Request tuples.

Mooncake (https://github.com/kvcache-ai/Mooncake, FAST'25 traces): one JSON object per line with
`timestamp` (ms since trace start), `input_length`, `output_length` and `hash_ids`, one id per
512-token block of the prompt, where equal ids mean equal prefix content.

Plain traces: columns `arrival` (seconds; or `arrival_ms`), `input` (prompt tokens), `output`
(generated tokens), optional `prefix` (a key: requests with the same key share their leading
full blocks), optional `prefix_tokens` (how many leading tokens the key covers; default: all),
optional `success` (1/0, true/false). CSV needs a header row; JSONL uses the same names.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from floorline.errors import InputError


@dataclass(frozen=True, slots=True)
class Request:
    arrival_s: float
    input_tokens: int
    output_tokens: int
    blocks: tuple  # hashable block keys, one per block_size tokens of the prompt (last one may be partial)
    success: bool | None = None


_ALIASES = {
    "arrival": ("arrival", "arrival_s", "timestamp_s", "time"),
    "arrival_ms": ("arrival_ms", "timestamp_ms"),
    "input": ("input", "input_tokens", "input_length", "prompt_tokens"),
    "output": ("output", "output_tokens", "output_length", "completion_tokens"),
    "prefix": ("prefix", "prefix_key", "session", "session_id"),
    "prefix_tokens": ("prefix_tokens", "prefix_length"),
    "success": ("success", "ok", "accepted"),
}


def _pick(row: dict, name: str):
    for k in _ALIASES[name]:
        if k in row and row[k] not in (None, ""):
            return row[k]
    return None


def _int(value, field: str, where: str, *, minimum: int) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field {field}: expected an integer, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or f < minimum:
        raise InputError(f"{where}: field {field}: must be an integer >= {minimum}, got {value!r}")
    return int(f)


def _time(value, field: str, where: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field {field}: expected a number, got {value!r}") from None
    if not math.isfinite(f) or f < 0:
        raise InputError(f"{where}: field {field}: must be a finite number >= 0, got {value!r}")
    return f


def _success(value, where: str) -> bool | None:
    if value is None:
        return None
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "1.0"):
        return True
    if s in ("0", "false", "no", "0.0"):
        return False
    raise InputError(f"{where}: field success: must be 1/0 or true/false, got {value!r}")


def _n_blocks(tokens: int, block_size: int) -> int:
    return -(-tokens // block_size)


def _mooncake(obj: dict, where: str, block_size: int) -> Request:
    ts = _time(obj.get("timestamp"), "timestamp", where)
    n_in = _int(obj.get("input_length"), "input_length", where, minimum=1)
    n_out = _int(obj.get("output_length"), "output_length", where, minimum=1)
    ids = obj.get("hash_ids")
    if not isinstance(ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in ids):
        raise InputError(f"{where}: field hash_ids: must be a list of integers")
    if len(ids) != _n_blocks(n_in, block_size):
        raise InputError(f"{where}: field hash_ids: {len(ids)} ids for input_length {n_in} at block size "
                         f"{block_size} (expected {_n_blocks(n_in, block_size)}; Mooncake traces use --block-size 512)")
    return Request(ts / 1000.0, n_in, n_out, tuple(ids), _success(_pick(obj, "success"), where))


def _plain(row: dict, where: str, block_size: int, index: int) -> Request:
    a = _pick(row, "arrival")
    if a is not None:
        arrival = _time(a, "arrival", where)
    else:
        ms = _pick(row, "arrival_ms")
        if ms is None:
            raise InputError(f"{where}: field arrival: missing (need arrival in seconds or arrival_ms)")
        arrival = _time(ms, "arrival_ms", where) / 1000.0
    if _pick(row, "input") is None:
        raise InputError(f"{where}: field input: missing (prompt tokens)")
    if _pick(row, "output") is None:
        raise InputError(f"{where}: field output: missing (generated tokens)")
    n_in = _int(_pick(row, "input"), "input", where, minimum=1)
    n_out = _int(_pick(row, "output"), "output", where, minimum=1)
    key = _pick(row, "prefix")
    n_blocks = _n_blocks(n_in, block_size)
    shared = 0
    if key is not None:
        pt = _pick(row, "prefix_tokens")
        covered = n_in if pt is None else min(n_in, _int(pt, "prefix_tokens", where, minimum=0))
        shared = covered // block_size  # only full blocks can be shared
    # Block i of a keyed request is (key, i): two requests with one key share content up to the
    # shorter shared run, which is the conversation model (each turn extends the last prompt).
    blocks = tuple((("k", str(key), i) if i < shared else ("r", index, i)) for i in range(n_blocks))
    return Request(arrival, n_in, n_out, blocks, _success(_pick(row, "success"), where))


def load_trace(path: Path, block_size: int = 512, limit: int | None = None) -> list[Request]:
    """Read a trace; a malformed line is an InputError naming the line number and the field."""
    path = Path(path)
    if block_size <= 0:
        raise InputError(f"--block-size: must be > 0, got {block_size}")
    if not path.exists():
        raise InputError(f"{path}: no such trace file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a .jsonl or .csv trace")
    out: list[Request] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"{path}: line 1: empty CSV, expected a header row")
            for lineno, row in enumerate(reader, start=2):
                if limit is not None and len(out) >= limit:
                    break
                if None in row:
                    raise InputError(f"{path}: line {lineno}: more values than header columns")
                out.append(_plain(row, f"{path}: line {lineno}", block_size, len(out)))
    else:
        with open(path) as f:
            for lineno, line in enumerate(f, start=1):
                if limit is not None and len(out) >= limit:
                    break
                if not line.strip():
                    continue
                where = f"{path}: line {lineno}"
                try:
                    obj = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as e:
                    raise InputError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(obj, dict):
                    raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
                if "hash_ids" in obj:
                    out.append(_mooncake(obj, where, block_size))
                else:
                    out.append(_plain(obj, where, block_size, len(out)))
    if not out:
        raise InputError(f"{path}: no requests in the trace")
    # Queueing is by arrival; a stable sort keeps trace order among equal arrival times.
    if any(b.arrival_s < a.arrival_s for a, b in zip(out, out[1:], strict=False)):
        out.sort(key=lambda r: r.arrival_s)
    return out
