"""The one list of modules that hold report sections. A capability adds one line here."""

from importlib import import_module

SECTION_MODULES = (
    "floorline.bench.attention_report",
    "floorline.bench.allreduce_report",
    "floorline.bench.decode_report",
    "floorline.gpu.report",
    "floorline.evidence.report",
    "floorline.machine.report",
    "floorline.economics.report",
    "floorline.replay.report",
    "floorline.kernelenv.report",
)


def load_all() -> None:
    for mod in SECTION_MODULES:
        import_module(mod)
