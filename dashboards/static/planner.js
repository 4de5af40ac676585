// The planner page: the snapshot of /board/planner/data (polled: a plan takes longer to make than a board
// snapshot), and an ATP look-up through /planning/atp/{item}, both with the board's key (common.js).
"use strict";

const PLANNER_POLL_MS = 30000;
const PLANNER_STALE_AFTER_MS = 90000;

const planner = { snapshot: null, receivedAt: 0, atp: null, poller: null, problem: null };
window.planner = planner; // what is on screen, for people and tests to inspect

const text = (value) => (value === null || value === undefined ? "—" : String(value));
const pct = (value) => (value === null ? "—" : `${value} %`);
const cell = (value, number = false) => el("td", { class: number ? "number" : "", textContent: text(value) });

function rows(tableId, items, toCells, emptyText, rowClass = () => "") {
  const body = document.querySelector(`#${tableId} tbody`);
  const columns = document.querySelectorAll(`#${tableId} thead th`).length;
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "none", colSpan: columns, textContent: emptyText })));
    return;
  }
  body.replaceChildren(...items.map((item) => el("tr", { class: rowClass(item) }, ...toCells(item))));
}

function kpiFigure(label, value) {
  return el("div", { class: "figure" }, el("span", { class: "value", textContent: value }),
    el("span", { class: "label", textContent: label }));
}

function render(snapshot) {
  const k = snapshot.kpis;
  document.getElementById("window").textContent = `plan of today · KPIs of the last ${k.window_days} days`;
  document.getElementById("days").textContent = snapshot.days;
  document.getElementById("kpi-figures").replaceChildren(
    kpiFigure("on time vs due", pct(k.on_time_vs_due.percent)),
    kpiFigure("on time vs promise", pct(k.on_time_vs_promise.percent)),
    kpiFigure("orders at risk", String(snapshot.at_risk.length)),
    kpiFigure("to firm", String(snapshot.to_firm.length)));
  rows("at-risk", snapshot.at_risk, (r) => [cell(r.demand_id), cell(r.item_id), cell(r.due), cell(r.covered_on), cell(r.quantity, true)],
    "no sales-order line at risk", () => "late");
  const late = snapshot.shortages.flatMap((s) => s.late_demands.map((d) => ({ item_id: s.item_id, ...d })));
  const belowSafety = snapshot.shortages.flatMap((s) => s.below_safety_stock.map((b) => ({ item_id: s.item_id, ...b })));
  rows("shortages", [...late, ...belowSafety], (r) => (r.demand_id
    ? [cell(r.item_id), cell(r.demand_id), cell(r.due), cell(r.covered_on), cell(r.quantity, true), cell(r.orders_hit.join(", "))]
    : [cell(r.item_id), cell("below safety stock"), cell(r.start), cell(null), cell(r.short_of_safety_stock, true), cell(null)]),
  "nothing runs short", (r) => (r.demand_id ? "late" : ""));
  rows("to-firm", snapshot.to_firm, (o) => [cell(o.id), cell(o.item_id), cell(o.kind), cell(o.quantity, true), cell(o.release),
    cell(o.receipt)], "nothing to release", (o) => (o.release_past_due ? "past-due" : ""));
  rows("suppliers", k.suppliers, (s) => [cell(s.supplier_id), cell(pct(s.on_time_percent)), cell(pct(s.quality_percent)),
    cell(pct(s.score))], "no receipts in the window");
  rows("forecasts", k.forecasts, (f) => [cell(f.item_id), cell(f.forecast, true), cell(f.actual, true), cell(pct(f.accuracy_percent)),
    cell(pct(f.bias_percent))], "no forecast bucket has ended in the window");
  document.getElementById("updated").textContent = `updated ${new Date(snapshot.generated_at).toLocaleTimeString("en-GB", { hour12: false })}`;
  planner.snapshot = snapshot;
  planner.receivedAt = Date.now();
  planner.problem = null;
  showFreshness();
}

function showFreshness() {
  const age = planner.receivedAt ? Date.now() - planner.receivedAt : 0;
  const stale = planner.receivedAt > 0 && age > PLANNER_STALE_AFTER_MS;
  const banner = document.getElementById("stale");
  banner.hidden = !stale && planner.problem === null;
  banner.textContent = planner.problem || (stale ? `No update for ${Math.round(age / 1000)} s: the lists below may be out of date.` : "");
}

// A plan the server cannot make (a BOM cycle, an item without lead time: 409 naming it) is said, not hidden.
function showProblem(body) {
  planner.problem = `The plan cannot be made: ${typeof body.detail === "string" ? body.detail : "the server refused"}`;
  showFreshness();
}

async function refused(response) {
  if (response.status !== 401 && response.status !== 403) return false;
  clearInterval(planner.poller);
  planner.poller = null;
  askForKey(true, start);
  return true;
}

async function poll() {
  try {
    const response = await fetch("/board/planner/data", { cache: "no-store", headers: authorized() });
    if (await refused(response)) return;
    if (response.ok) render(await response.json());
    else showProblem(await response.json());
  } catch (error) {
    // the stale warning tells people; the next poll tries again
  }
}

async function lookUp(item) {
  const error = document.getElementById("atp-error");
  const table = document.getElementById("atp");
  const response = await fetch(`/planning/atp/${encodeURIComponent(item)}?bucket=day&buckets=14`, { cache: "no-store", headers: authorized() });
  if (await refused(response)) return;
  const body = await response.json();
  if (!response.ok) {
    error.textContent = typeof body.detail === "string" ? body.detail : `the look-up answered ${response.status}`;
    error.hidden = false;
    table.hidden = true;
    planner.atp = null;
    return;
  }
  error.hidden = true;
  table.hidden = false;
  rows("atp", body.buckets, (b) => [cell(b.start), cell(b.supply, true), cell(b.booked, true), cell(b.discrete_atp, true),
    cell(b.cumulative_atp, true)], "no buckets");
  planner.atp = body;
}

let started = false;

function start() {
  if (!keptKey()) {
    askForKey(false, start);
    return;
  }
  if (!started) {
    setInterval(showFreshness, 1000);
    document.getElementById("atp-form").onsubmit = (event) => {
      event.preventDefault();
      lookUp(document.getElementById("atp-item").value.trim());
    };
  }
  started = true;
  poll();
  if (planner.poller === null) planner.poller = setInterval(poll, PLANNER_POLL_MS);
}

start();
