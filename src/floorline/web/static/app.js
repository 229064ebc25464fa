// Machine calculator page: sliders -> POST /api/check -> every check redrawn. No framework, no build.
"use strict";

const GROUPS = ["power", "cooling", "lanes", "fabric", "mechanical"];
const $ = (id) => document.getElementById(id);
let designs = [];
let formulas = {};       // check id -> formula, shown when a row is opened
const open = new Set();  // rows the user expanded survive re-renders
let current = null;      // the selected design object from /api/designs
let overrides = {};      // key -> value the user has moved away from the design
let seq = 0;             // request counter: a slow answer must not overwrite a newer one
let timer = null;

function fmt(x, unit) {
  if (x === null || x === undefined) return "∞";
  const a = Math.abs(x);
  let s = Number.isInteger(x) && a < 1e7 ? x.toLocaleString("en-US") : a >= 10000 ? Math.round(x).toLocaleString("en-US")
    : a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(2);
  if (unit === "degC") return s + " °C";
  if (unit === "lanes") return s + " lanes";
  if (unit === "1" || !unit) return s;
  return s + " " + unit.replace("us", "µs").replace("^2", "²").replace("^3", "³");
}

function pct(m) {
  if (m === null || m === undefined) return "∞";
  return (m >= 0 ? "+" : "") + (100 * m).toFixed(1) + "%";
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  for (const s of current.sliders) {
    const wrap = el("div", "slider");
    wrap.dataset.key = s.key;
    const top = el("div", "slider-top");
    top.append(el("span", "slider-name", s.label), el("span", "slider-val"));
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: s.min, max: s.max, step: s.step, value: s.value });
    input.dataset.key = s.key;
    input.setAttribute("aria-label", s.label);
    input.addEventListener("input", () => {
      const v = Number(input.value);
      if (Math.abs(v - s.value) < s.step / 2) delete overrides[s.key]; else overrides[s.key] = v;
      paintSlider(wrap, s);
      schedule();
    });
    const meta = el("div", "slider-meta");
    const key = el("span", "key", s.key);
    const conf = el("span", "conf " + s.confidence, s.confidence);
    conf.title = s.source;
    meta.append(key, conf);
    wrap.append(top, input, meta);
    wrap.title = s.source;
    box.append(wrap);
    paintSlider(wrap, s);
  }
}

function paintSlider(wrap, s) {
  const v = s.key in overrides ? overrides[s.key] : s.value;
  wrap.querySelector(".slider-val").textContent = fmt(v, s.unit);
  wrap.classList.toggle("changed", s.key in overrides);
  wrap.querySelector(".slider-meta .key").textContent = s.key in overrides ? `${s.key} · design ${fmt(s.value, s.unit)}` : s.key;
}

function cliLine() {
  // The same what-if from the terminal: values are in the design's unit, which is what a bare number means.
  const sets = Object.entries(overrides).map(([k, v]) => ` --set ${k}=${+v.toPrecision(6)}`).join("");
  $("cli").textContent = `$ floorline machine check ${current.name}${sets}`;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(run, 40);
}

async function run() {
  const mine = ++seq;
  let res, body;
  try {
    res = await fetch("api/check", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ design: current.name, set: overrides }),
    });
    body = await res.json();
  } catch (e) {
    if (mine === seq) showError("cannot reach the server: " + e);
    return;
  }
  if (mine !== seq) return;
  if (!res.ok) { showError(body.detail || ("HTTP " + res.status)); return; }
  showError(null);
  render(body);
}

function showError(msg) {
  const box = $("error");
  box.hidden = !msg;
  box.textContent = msg || "";
}

function render(rep) {
  cliLine();
  const s = rep.summary;
  $("n-pass").textContent = s.pass;
  $("n-cond").textContent = s.conditional;
  $("n-fail").textContent = s.fail;
  $("kpi-summary").classList.toggle("bad", s.fail > 0);
  const byId = Object.fromEntries(rep.checks.map((c) => [c.id, c]));
  kpi("tray", rep.derived.tray_peak_power, byId["power.tray_peak"], "budget");
  kpi("tj", rep.derived.junction_temp, byId["cooling.junction"], "limit");
  kpi("rack", rep.derived.rack_input_power, byId["power.rack_total"], "feed");

  const box = $("groups");
  box.textContent = "";
  for (const g of GROUPS) {
    const checks = rep.checks.filter((c) => c.group === g);
    if (!checks.length) continue;
    const card = el("div", "group");
    card.dataset.group = g;
    const head = el("div", "group-head");
    const bad = checks.filter((c) => c.status !== "PASS").length;
    head.append(el("h2", "", g), el("span", "group-count",
      `${checks.length} checks` + (bad ? ` · ${bad} not clean` : " · all pass")));
    card.append(head);
    for (const c of checks) card.append(row(c));
    box.append(card);
  }
}

function kpi(name, d, check, word) {
  $("kpi-" + name).textContent = fmt(d.value, d.unit);
  $("kpi-" + name + "-sub").textContent = check ? `${word} ${fmt(check.limit, check.unit)} · ${check.status}` : "";
  $("kpi-" + name).parentElement.classList.toggle("bad", !!check && check.status === "FAIL");
}

function row(c) {
  const st = c.status.toLowerCase();
  const r = el("div", "check");
  r.dataset.checkId = c.id;
  r.dataset.status = c.status;
  r.append(el("span", "pill " + st, c.status));
  const mid = el("div");
  mid.append(el("div", "check-title", c.title), el("div", "check-id", c.id));
  if (c.status !== "PASS") mid.append(el("div", "check-reason", c.reason));
  r.title = "click for the formula";
  const right = el("div");
  const cmp = c.status === "FAIL" ? "vs" : "of";
  right.append(el("div", "check-num", `${fmt(c.value, c.unit)} ${cmp} ${fmt(c.limit, c.unit)}`));
  const bar = el("div", "bar");
  const fill = el("div", "bar-fill " + st);
  const m = c.margin === null ? 1 : Math.min(1, Math.abs(c.margin));
  fill.style.width = (100 * Math.max(m, c.status === "FAIL" ? 0.03 : 0)).toFixed(1) + "%";
  bar.append(fill);
  right.append(bar, el("div", "margin-label " + (c.status === "FAIL" ? "c-fail" : ""), "margin " + pct(c.margin)));
  const more = el("div", "check-more");
  more.append(el("div", "", "formula: " + (formulas[c.id] || "")),
    el("div", "", `inputs and sources: floorline machine explain ${c.id} ${current.name}`));
  mid.append(more);
  r.classList.toggle("open", open.has(c.id));
  r.addEventListener("click", () => { r.classList.toggle("open"); open.has(c.id) ? open.delete(c.id) : open.add(c.id); });
  r.append(mid, right);
  return r;
}

function selectDesign(name) {
  current = designs.find((d) => d.name === name) || designs[0];
  overrides = {};
  $("design").value = current.name;
  $("design-desc").textContent = current.description;
  buildSliders();
  run();
}

async function init() {
  const res = await fetch("api/designs");
  const body = await res.json();
  designs = body.designs;
  formulas = Object.fromEntries(body.checks.map((c) => [c.id, c.formula]));
  const sel = $("design");
  for (const d of designs) {
    const o = el("option", "", `${d.name} — ${d.title}`);
    o.value = d.name;
    sel.append(o);
  }
  sel.addEventListener("change", () => selectDesign(sel.value));
  $("reset").addEventListener("click", () => selectDesign(current.name));
  $("only-bad").addEventListener("change", (e) => $("groups").classList.toggle("only-bad", e.target.checked));
  selectDesign((designs.find((d) => d.default) || designs[0]).name);
}

init().catch((e) => showError("failed to load designs: " + e));
