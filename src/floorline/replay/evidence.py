"""The `replay` evidence packet: inputs (trace hash, settings, provenance) and the result."""

from __future__ import annotations

from pathlib import Path

from floorline.evidence.schema import Artifact, Floor


def write_replay_packet(trace: Path, a: dict, b: dict | None, directory: Path, compare: str | None,
                        name: str | None = None, notes: list[str] | None = None) -> Path:
    from floorline.evidence.store import new_packet, sha256_file, write_packet

    trace = Path(trace)
    s = a["provenance"]["settings"]
    # short scalars first: `evidence table` shows a packet's first four params
    params = {"trace": trace.name, "requests": a["requests"], "model": s["model"], "gpu": s["gpu"],
              "trace_sha256": sha256_file(trace), "result": a}
    if b is not None:
        params["compare"] = {"change": compare, "result": b}
    # The floor here is the simulated instance's own roofline: the replay is a model, not a timing.
    floor = Floor(model="roofline: max(FLOPs / peak, bytes / HBM bandwidth) per prefill and decode step",
                  value=a["gpu_seconds"], ceiling=None, fraction=None)
    packet = new_packet("replay", params=params, floor=floor, notes=(notes or []) + [
        "simulated, not measured: times come from the catalog roofline (or a calibration packet)"])
    try:
        rel = trace.resolve().relative_to(Path(directory).resolve())
        packet = packet.model_copy(update={"artifacts": [Artifact(path=str(rel), sha256=params["trace_sha256"])]})
    except ValueError:
        pass  # the trace lives outside the packet's directory; its hash is in params
    return write_packet(packet, Path(directory), name)
