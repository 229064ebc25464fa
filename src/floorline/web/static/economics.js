// Economics page: sliders -> POST /api/economics/serving -> KPIs, rack-hour split, target table, curve.
// Plain JS, no dependencies. Every number shown comes back from the server (the same code as the CLI),
// except the curve, which redraws the server's own formula across throughputs for context.
"use strict";

const SEED = { hw: 3.9e6 / 3 / 8760 / 72, tps: 2173, pue: 1.2, kwh: 0.10, rackKw: 132, gpr: 72, target: 1e9 };

// key, label, unit formatter, [min, max, step], log scale?
const SLIDERS = [
  ["tokens_per_s", "Output tokens/s per GPU", v => fmtNum(v, 0), [10, 100000], true],
  ["hardware_usd_per_gpu_hour", "Hardware $/GPU-hour (capex or rental, before power)", v => "$" + v.toFixed(2), [0.25, 15, 0.05], false],
  ["pue", "PUE (facility / IT power)", v => v.toFixed(2), [1.0, 2.0, 0.01], false],
  ["usd_per_kwh", "Electricity $/kWh", v => "$" + v.toFixed(3), [0.02, 0.40, 0.005], false],
  ["rack_kw", "Rack IT power (kW)", v => v.toFixed(0) + " kW", [10, 250, 1], false],
  ["gpus_per_rack", "GPUs per rack", v => v.toFixed(0), [1, 144, 1], false],
  ["tokens_per_hour", "Target output tokens/hour", v => fmtNum(v, 0), [1e6, 1e11], true],
];
const DEFAULTS = { tokens_per_s: SEED.tps, hardware_usd_per_gpu_hour: SEED.hw, pue: SEED.pue, usd_per_kwh: SEED.kwh,
  rack_kw: SEED.rackKw, gpus_per_rack: SEED.gpr, tokens_per_hour: SEED.target };
const state = { ...DEFAULTS };
let last = null;

function fmtNum(v, digits) {
  if (v >= 1e12) return (v / 1e12).toFixed(2).replace(/\.?0+$/, "") + "T";
  if (v >= 1e9) return (v / 1e9).toFixed(2).replace(/\.?0+$/, "") + "B";
  if (v >= 1e6) return (v / 1e6).toFixed(2).replace(/\.?0+$/, "") + "M";
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}
function money(v) {
  if (v >= 1e6) return "$" + (v / 1e6).toFixed(2) + "M";
  if (v >= 100) return "$" + Math.round(v).toLocaleString("en-US");
  if (v >= 1) return "$" + v.toFixed(2);
  if (v >= 0.01) return "$" + v.toFixed(3);
  return "$" + v.toPrecision(3);
}
const $ = id => document.getElementById(id);

function toPos(v, [lo, hi], log) { return log ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * 1000 : v; }
function fromPos(p, [lo, hi], log) { return log ? Math.pow(10, Math.log10(lo) + p / 1000 * (Math.log10(hi) - Math.log10(lo))) : p; }

function buildSliders() {
  const box = $("sliders");
  box.innerHTML = "";
  for (const [key, label, fmt, range, log] of SLIDERS) {
    const div = document.createElement("div");
    div.className = "slider";
    div.dataset.key = key;
    const input = document.createElement("input");
    input.type = "range";
    input.id = "s-" + key;
    input.setAttribute("aria-label", label);
    if (log) { input.min = 0; input.max = 1000; input.step = 1; }
    else { input.min = range[0]; input.max = range[1]; input.step = range[2]; }
    input.value = toPos(state[key], range, log);
    div.innerHTML = `<div class="slider-top"><span class="slider-name">${label}</span>` +
      `<span class="slider-val" id="v-${key}"></span></div>`;
    div.appendChild(input);
    const meta = document.createElement("div");
    meta.className = "slider-meta";
    meta.innerHTML = `<span>${fmt(range[0])}</span><span>${fmt(range[1])}</span>`;
    div.appendChild(meta);
    input.addEventListener("input", () => {
      let v = fromPos(Number(input.value), range, log);
      if (log) v = Number(v.toPrecision(3));
      state[key] = v;
      sync();
      schedule();
    });
    box.appendChild(div);
  }
  sync();
}

function sync() {
  for (const [key, , fmt, range, log] of SLIDERS) {
    $("v-" + key).textContent = fmt(state[key]);
    const input = $("s-" + key);
    const pos = toPos(state[key], range, log);
    if (Math.abs(Number(input.value) - pos) > (log ? 1 : 1e-9)) input.value = pos;
    input.closest(".slider").classList.toggle("changed", Math.abs(state[key] - DEFAULTS[key]) > 1e-9 * Math.max(1, DEFAULTS[key]));
  }
}

let timer = null;
function schedule() { clearTimeout(timer); timer = setTimeout(update, 40); }

async function update() {
  const body = { ...state, gpus_per_rack: Math.round(state.gpus_per_rack) };
  let res;
  try {
    res = await fetch("api/economics/serving", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) { showError("server unreachable: " + e.message); return; }
  const data = await res.json();
  if (!res.ok) { showError(data.detail || ("HTTP " + res.status)); return; }
  showError(null);
  last = data;
  render(data);
}

function showError(msg) {
  const e = $("error");
  e.hidden = !msg;
  e.textContent = msg || "";
}

function render(d) {
  const t = d.target;
  $("kpi-usdm").textContent = money(d.usd_per_m_output_tokens);
  $("kpi-usdm-sub").textContent = `at ${fmtNum(state.tokens_per_s, 0)} tokens/s/GPU`;
  $("kpi-racks").textContent = t.racks >= 100 ? fmtNum(t.racks, 0) : t.racks.toFixed(2);
  $("kpi-racks-sub").textContent = `${fmtNum(t.gpus, 1)} GPU-equivalents for ${fmtNum(t.tokens_per_hour, 0)} tokens/h`;
  $("kpi-gpuh").textContent = money(d.usd_per_gpu_hour);
  $("kpi-gpuh-sub").textContent = `rack-hour ${money(d.rack_hour_usd)}`;
  $("kpi-j").textContent = d.j_per_output_token >= 1 ? d.j_per_output_token.toFixed(2) + " J" : (d.j_per_output_token * 1000).toFixed(1) + " mJ";
  $("kpi-j-sub").textContent = `${d.kwh_per_m_output_tokens.toPrecision(3)} kWh per M tokens`;

  const total = d.rack_hour_usd;
  const capexShare = total > 0 ? d.rack_hour_capex_usd / total * 100 : 0;
  $("stack-capex").style.width = capexShare + "%";
  $("stack-power").style.width = (100 - capexShare) + "%";
  $("leg-capex").textContent = `${money(d.rack_hour_capex_usd)}/h (${capexShare.toFixed(0)}%)`;
  $("leg-power").textContent = `${money(d.rack_hour_power_usd)}/h (${(100 - capexShare).toFixed(0)}%)`;
  $("rack-hour-total").textContent = `${money(total)} per rack-hour`;
  const rows = [
    ["GPU-equivalents", fmtNum(t.gpus, 1)],
    ["racks", t.racks.toFixed(2)],
    ["facility power", fmtNum(t.facility_kw, 1) + " kW"],
    ["energy per day", fmtNum(t.kwh_per_day, 0) + " kWh"],
    ["cost per day", money(t.usd_per_day)],
    ["facility W per GPU", fmtNum(d.facility_w_per_gpu, 0) + " W"],
  ];
  $("target-table").innerHTML = `<tr><td colspan="2" class="muted small">at the target of ${fmtNum(t.tokens_per_hour, 0)} output tokens/hour</td></tr>` +
    rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
  drawCurve(d);
}

function drawCurve(d) {
  // $/M = gpuHour * 1e6 / (tps * 3600): a straight line on log-log axes; the dot is the current input.
  const W = 560, H = 300, ml = 64, mr = 16, mt = 14, mb = 40;
  const x0 = 1, x1 = 5;
  const usd = tps => d.usd_per_gpu_hour * 1e6 / (tps * 3600);
  const ys = [usd(10), usd(1e5)].map(Math.log10);
  const y0 = Math.floor(Math.min(...ys)), y1 = Math.ceil(Math.max(...ys));
  const px = lx => ml + (lx - x0) / (x1 - x0) * (W - ml - mr);
  const py = ly => mt + (1 - (ly - y0) / (y1 - y0)) * (H - mt - mb);
  let s = `<svg viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="dollars per million tokens against tokens per second">`;
  for (let e = 1; e <= 5; e++) {
    s += `<line class="curve-grid" x1="${px(e)}" x2="${px(e)}" y1="${mt}" y2="${H - mb}"/>`;
    s += `<text class="curve-axis" x="${px(e)}" y="${H - mb + 16}" text-anchor="${e === 5 ? "end" : "middle"}">${["", "10", "100", "1K", "10K", "100K"][e]}</text>`;
  }
  for (let e = y0; e <= y1; e++) {
    s += `<line class="curve-grid" x1="${ml}" x2="${W - mr}" y1="${py(e)}" y2="${py(e)}"/>`;
    s += `<text class="curve-axis" x="${ml - 8}" y="${py(e) + 4}" text-anchor="end">$${e >= 0 ? Math.pow(10, e).toLocaleString("en-US") : Math.pow(10, e).toFixed(-e)}</text>`;
  }
  s += `<text class="curve-axis" x="${(W + ml) / 2}" y="${H - 6}" text-anchor="middle">output tokens/s per GPU</text>`;
  s += `<line class="curve-line" x1="${px(x0)}" y1="${py(Math.log10(usd(10)))}" x2="${px(x1)}" y2="${py(Math.log10(usd(1e5)))}"/>`;
  const cx = px(Math.log10(state.tokens_per_s)), cy = py(Math.log10(d.usd_per_m_output_tokens));
  s += `<circle class="curve-dot" cx="${cx}" cy="${cy}" r="6"/>`;
  const anchor = cx > W * 0.65 ? "end" : "start";
  s += `<text class="curve-label" x="${cx + (anchor === "end" ? -12 : 12)}" y="${cy - 10}" text-anchor="${anchor}">${money(d.usd_per_m_output_tokens)}/M at ${fmtNum(state.tokens_per_s, 0)} tok/s</text>`;
  s += "</svg>";
  $("curve").innerHTML = s;
}

async function init() {
  buildSliders();
  let defaults = null;
  try {
    const res = await fetch("api/economics/defaults");
    if (res.ok) defaults = await res.json();
  } catch (e) { /* the page still works with its built-in seed defaults */ }
  const tpsSel = $("tps-preset");
  const tpsOptions = [["custom (slider)", null, ""],
    ["seed 002 before: 2,173 tok/s/GPU", 2173, "InferenceX Kimi K2.5 NVFP4 8k/1k, GB200 Dynamo+vLLM, TP4/EP4, concurrency 128 (public row)"],
    ["seed 002 after: 12,576 tok/s/GPU", 12576, "same row family, TP16/EP16, concurrency 4,096 (public row)"]];
  for (const m of (defaults && defaults.measured) || []) tpsOptions.push([`measured: ${m.label}`, m.tokens_per_s, `evidence packet ${m.path} (id ${m.packet_id.slice(0, 12)})`]);
  tpsSel.innerHTML = tpsOptions.map(([l], i) => `<option value="${i}">${l}</option>`).join("");
  tpsSel.value = "1";
  $("tps-preset-note").textContent = tpsOptions[1][2];
  tpsSel.addEventListener("change", () => {
    const o = tpsOptions[Number(tpsSel.value)];
    $("tps-preset-note").textContent = o[2];
    if (o[1] != null) { state.tokens_per_s = o[1]; sync(); schedule(); }
  });
  const priceSel = $("price-preset");
  const priceOptions = [["seed 002 rack: $3.9M / 3 y / 72 GPUs", SEED.hw, "SemiAnalysis-style all-in NVL72 rack, three-year depreciation (seed 002)"]];
  for (const dv of (defaults && defaults.devices) || []) priceOptions.push([`${dv.key}: $${dv.usd_per_gpu_hour}/GPU-h`, dv.usd_per_gpu_hour, dv.usd_per_gpu_hour_source]);
  priceSel.innerHTML = priceOptions.map(([l], i) => `<option value="${i}">${l}</option>`).join("");
  $("price-preset-note").textContent = priceOptions[0][2];
  priceSel.addEventListener("change", () => {
    const o = priceOptions[Number(priceSel.value)];
    $("price-preset-note").textContent = o[2];
    state.hardware_usd_per_gpu_hour = o[1]; sync(); schedule();
  });
  $("reset").addEventListener("click", () => { Object.assign(state, DEFAULTS); tpsSel.value = "1"; priceSel.value = "0"; sync(); schedule(); });
  if (defaults) {
    const s = defaults.serving;
    $("sources").textContent = `Sources: rack capex ${s.rack_capex_usd.source}; rack power ${s.rack_it_kw.source}; PUE ${s.pue.source}; electricity ${s.usd_per_kwh.source}.`;
  }
  update();
}

init();
