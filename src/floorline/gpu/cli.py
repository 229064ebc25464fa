from __future__ import annotations

import typer

from floorline.render import console, print_json, table


def register(app: typer.Typer) -> None:
    @app.command("device")
    def device(json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """What the GPUs say about themselves: SMs, L2, HBM, clocks, driver, P2P matrix, topology."""
        from floorline.gpu.probe import probe

        info = probe()
        if json_out:
            print_json(info)
            return
        if not info["cuda_available"]:
            console.print(f"no CUDA device: {info['reason']} (torch {info['torch']})")
            return
        rows = [
            [g["index"], g["name"], g["compute_capability"], g["sm_count"],
             f"{g['memory_bytes'] / 2**30:.1f} GiB", f"{(g['l2_bytes'] or 0) / 2**20:.0f} MiB",
             g["max_sm_clock_mhz"], g["max_mem_clock_mhz"], g["copy_engines"], g["driver"]]
            for g in info["gpus"]
        ]
        table(f"CUDA {info['cuda_runtime']}, torch {info['torch']}, NCCL {info['nccl']}",
              ["gpu", "name", "cc", "SMs", "HBM", "L2", "max SM MHz", "max mem MHz", "copy engines", "driver"],
              rows)
        n = len(info["p2p"])
        if n > 1:
            table("peer access", ["", *map(str, range(n))],
                  [[i, *("yes" if v else "no" for v in row)] for i, row in enumerate(info["p2p"])])
        if info.get("topology"):
            console.print(info["topology"])
