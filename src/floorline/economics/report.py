"""Report section: seed 003's training table, seed 002's capacity block, and serving prices
(from the seed's public throughput rows and from every passed `bench.decode` packet under results/)."""

from __future__ import annotations

from floorline.report.registry import ReportContext, SectionResult, section


@section("economics", "Economics: training cost, capacity freed, serving price", order=80)
def economics_section(ctx: ReportContext) -> SectionResult:
    from floorline.economics.capacity import CapacityInputs, capacity
    from floorline.economics.serving import ServingInputs, serving_cost, throughput_from_packet
    from floorline.economics.training import TrainingInputs, training_cost
    from floorline.evidence.store import iter_packets, new_packet, write_packet

    training = [training_cost(TrainingInputs.seed_defaults(n, gpu=g, precision=p))
                for g in ("b200", "b300") for p in ("bf16", "fp4") for n in (2e12, 4e12, 10e12)]
    cap = capacity(CapacityInputs.seed_defaults())
    serving = [("seed 002 before (2,173 tok/s/GPU)", serving_cost(ServingInputs.seed_defaults(output_tokens_per_s=2173))),
               ("seed 002 after (12,576 tok/s/GPU)", serving_cost(ServingInputs.seed_defaults(output_tokens_per_s=12576)))]
    measured = []
    root = ctx.out_dir.parent  # results/: decode packets from any device can be priced here
    if root.exists():
        for path, pk in iter_packets(root):
            if pk.kind == "bench.decode" and pk.status == "passed" and pk.timing is not None:
                prov = throughput_from_packet(path)
                dev, over = _device_prices(pk)
                r = serving_cost(ServingInputs.seed_defaults(output_tokens_per_s=prov["tokens_per_s_per_gpu"], **over))
                r["evidence"] = prov
                measured.append((f"measured {pk.params.get('model')} b{prov['batch']} on {dev} "
                                 f"({path.parent.name}/{path.name})", r))
    rows = []
    for r in training:
        i = r["inputs"]
        syn = r["synthetic_cost_usd"]
        rows.append([f"train {i['total_params'] / 1e12:g}T {i['gpu']} {i['precision']} @ ${i['usd_per_gpu_hour']:g}/h",
                     f"{r['racks']:,.0f} racks", f"${r['cost_usd'] / 1e6:,.0f}M",
                     f"{r['synthetic_tokens'] / 1e12:g}T synthetic: ${syn['standard'] / 1e9:.1f}B std / "
                     f"${syn['batch'] / 1e9:.1f}B batch" if r["synthetic_tokens"] else "no synthetic data"])
    rows.append(["capacity 2,173 -> 12,576 tok/s/GPU", f"{cap['capacity_ratio']:.2f}x, {cap['freed_gpu_equiv']:.1f} GPU-eq "
                 f"({cap['freed_racks']:.2f} racks) freed", f"{cap['facility_kw_freed']:.1f} kW",
                 f"{cap['kwh_per_day']:,.0f} kWh/day, ${cap['usd_per_day']:,.0f}/day"])
    for name, r in serving + measured:
        rows.append([f"serve {name}", f"${r['usd_per_gpu_hour']:.3f}/GPU-h", f"${r['usd_per_m_output_tokens']:.4f}/M out",
                     f"{r['j_per_output_token']:.3g} J/token, {r['kwh_per_m_output_tokens']:.3g} kWh/M"])
    packet = new_packet("economics.cost", params={
        # short scalars first: `evidence table` shows a packet's first four params
        "scope": "seed 003 training table, seed 002 capacity block, serving prices",
        "gpus": "b200,b300", "precisions": "bf16,fp4", "measured_packets": len(measured),
        "training": training, "capacity": cap,
        "serving": [{"name": n, **r} for n, r in serving + measured]},
        notes=["derived from catalog and seed assumptions (economics/hardware.toml, assumptions.toml); "
               "serving rows marked 'measured' come from bench.decode packets under results/"])
    path = write_packet(packet, ctx.out_dir, "economics-cost")
    notes = ["Seed 003 table (B200 BF16): 2T 191 racks $148M, 4T 762 racks $593M, 10T 4,763 racks $3.7B; "
             "seed 002 capacity block: 5.79x, 105.7 GPU-eq, 1.47 racks, 232.6 kW, 5,583 kWh/day, $558/day."]
    if not measured:
        notes.append("No passed bench.decode packet under results/ yet, so no measured serving price.")
    return SectionResult(packets=[path], headers=["case", "scale", "money/power", "detail"], rows=rows, notes=notes)


def _device_prices(pk) -> tuple[str, dict]:
    """Price a measured run on the GPU it ran on (catalog $/GPU-hour plus that GPU's power), not on the
    seed's GB200 rack. Host, fabric and cooling power are left out, so the energy is a lower bound."""
    from floorline.economics.catalog import devices

    name = pk.hardware.gpus[0].name.lower() if pk.hardware.gpus else ""
    for key, dev in devices().items():
        if key in name.replace("nvidia ", "").split():
            over: dict = {"gpus_per_rack": 1.0}
            if dev.get("usd_per_gpu_hour") is not None:
                over["hardware_usd_per_gpu_hour"] = dev.get("usd_per_gpu_hour").value
            if dev.get("power") is not None:
                over["rack_kw"] = dev.si("power") / 1000  # W -> kW for one GPU
            return key, over
    return "the seed's rack (GPU not in the catalog)", {}
