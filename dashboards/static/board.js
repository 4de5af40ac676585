// The live board: renders the snapshots of /board/events (server-sent events, read with fetch so that the
// key goes in a header), or of /board/data polled when the events fail. Plain JS, no build step. Every string
// from the server goes in as text, never as HTML.
//
// The data needs a read-only key (common.js: `keptKey`, `askForKey`).
"use strict";

const POLL_MS = 2000;
const STALE_AFTER_MS = 10000;
const RETRY_EVENTS_MS = 30000;

const board = { snapshot: null, receivedAt: 0, link: "connecting", poller: null };
window.board = board; // the snapshot on screen, for people and tests to inspect

const clock = (iso) => new Date(iso).toLocaleTimeString("en-GB", { hour12: false });
const hourMinute = (iso) => new Date(iso).toLocaleTimeString("en-GB", { hour12: false, hour: "2-digit", minute: "2-digit" });
const number = (value) => Number(value).toLocaleString("en-US");
const percent = (value) => (value === null ? "—" : `${value} %`);

function figure(label, value, extraClass = "") {
  return el("div", { class: `figure ${extraClass}`.trim() },
    el("span", { class: "value", textContent: value }), el("span", { class: "label", textContent: label }));
}

function renderOrder(order) {
  if (!order) return el("div", { class: "no-order", textContent: "no work order running" });
  const done = Math.min(Number(order.percent_complete), 100);
  const bar = el("div", { class: "bar" }, el("span", { style: `width: ${done}%` }));
  const eta = order.projected_finish ? `finish ≈ ${clock(order.projected_finish)}` : "finish: —";
  return el("div", { class: "order" },
    el("div", { textContent: `${order.work_order_id} · ${number(order.good)} / ${number(order.quantity)} · ${order.percent_complete} %` }),
    bar, el("div", { class: "eta", textContent: eta }));
}

function renderAlert(alert) {
  return el("li", { class: `alert ${alert.severity}` },
    el("span", { class: "when", textContent: clock(alert.raised_at) }),
    el("span", { class: "kind", textContent: `${alert.kind} · ${alert.subject}` }),
    el("span", { textContent: alert.detail }));
}

// How the edge reaches the machine: a badge beside its state (the detail on hover), and the detail in a line
// of its own when it is not ok, so that a TV nobody hovers over says which node or register is wrong.
function renderConnection(connection) {
  if (!connection) return null;
  const title = connection.detail ? `${connection.status}: ${connection.detail}` : connection.status;
  return el("span", { class: `connection conn-${connection.status}`, title, textContent: `PLC ${connection.status.replace("_", " ")}` });
}

function connectionLine(connection) {
  if (!connection || connection.status === "ok" || !connection.detail) return null;
  const since = connection.since ? ` (since ${clock(connection.since)})` : "";
  return el("div", { class: `connection-detail conn-${connection.status}`, textContent: `${connection.detail}${since}` });
}

function renderTile(tile) {
  const { figures, state, connection } = tile;
  const oee = figures.oee;
  const stateText = state.fault_code ? `${state.name} #${state.fault_code}` : state.name;
  return el("article", {
    class: `tile ${state.colour}`, "data-machine": tile.machine_id, "data-good": figures.good, "data-scrap": figures.scrap,
    "data-state": state.name, "data-connection": connection ? connection.status : "",
  },
    el("div", { class: "tile-head" },
      el("h3", { textContent: tile.machine_id }),
      el("span", { class: "badges" }, renderConnection(connection),
        el("span", { class: "state-name", textContent: stateText.replace("_", " ") }))),
    state.since ? el("div", { class: "since", textContent: `since ${clock(state.since)}` }) : null,
    connectionLine(connection),
    el("div", { class: "counts" },
      figure("good", number(figures.good), "good"), figure("scrap", number(figures.scrap), "scrap"),
      figure("per hour", figures.rate_per_hour === null ? "—" : number(figures.rate_per_hour), "rate")),
    el("div", { class: "oee" }, figure("OEE", percent(oee.oee)),
      el("span", { class: "apq", textContent: `A ${percent(oee.availability)} · P ${percent(oee.performance)} · Q ${percent(oee.quality)}` })),
    renderOrder(tile.work_order),
    tile.alerts.length ? el("ul", { class: "tile-alerts" }, ...tile.alerts.map(renderAlert)) : null);
}

function renderLine(line) {
  const f = line.figures;
  const summary = `good ${number(f.good)} · scrap ${number(f.scrap)} · OEE ${percent(f.oee.oee)}`;
  return el("section", { class: "line", "data-line": line.line },
    el("div", { class: "line-head" },
      el("h2", { textContent: `${line.line}` }), el("span", { class: "summary", textContent: `${line.area} · ${summary}` })),
    el("div", { class: "tiles" }, ...line.machines.map(renderTile)));
}

function render(snapshot) {
  const f = snapshot.figures;
  const period = snapshot.period.kind === "shift" ? `${snapshot.period.name} shift` : "today";
  document.getElementById("site").textContent = snapshot.site || "Open MES";
  document.getElementById("period").textContent = `${period} since ${hourMinute(snapshot.period.start)}`;
  document.getElementById("plant-figures").replaceChildren(
    figure("good", number(f.good)), figure("scrap", number(f.scrap)),
    figure("per hour", f.rate_per_hour === null ? "—" : number(f.rate_per_hour)), figure("OEE", percent(f.oee.oee)));
  document.getElementById("lines").replaceChildren(...snapshot.lines.map(renderLine));
  document.getElementById("alert-count").textContent = snapshot.open_alerts ? `(${snapshot.open_alerts})` : "";
  const alerts = snapshot.alerts.length ? snapshot.alerts.map(renderAlert) : [el("li", { class: "none", textContent: "no open alerts" })];
  document.getElementById("alerts").replaceChildren(...alerts);
  const review = snapshot.review, waiting = review.dead_letters + review.quarantined_steps;
  const reviewLine = document.getElementById("review");
  reviewLine.hidden = waiting === 0;
  reviewLine.textContent = waiting ? `${review.quarantined_steps} counter step(s) and ${review.dead_letters} dead letter(s) ` +
    `wait for review, the oldest since ${clock(review.oldest)}` : "";
  document.getElementById("updated").textContent = `updated ${clock(snapshot.generated_at)}`;
  document.body.dataset.generatedAt = snapshot.generated_at;
  board.snapshot = snapshot;
  board.receivedAt = Date.now();
  showFreshness();
}

function showLink(link) {
  board.link = link;
  const node = document.getElementById("link");
  node.textContent = link === "live" ? "● live" : link === "polling" ? "● polling" : "";
  node.className = `link ${link}`;
}

function showFreshness() {
  const age = board.receivedAt ? Date.now() - board.receivedAt : 0;
  const stale = board.receivedAt > 0 && age > STALE_AFTER_MS;
  const banner = document.getElementById("stale");
  banner.hidden = !stale;
  banner.textContent = stale ? `No update for ${Math.round(age / 1000)} s: the figures below may be out of date.` : "";
  document.body.classList.toggle("stale", stale);
}

async function poll() {
  try {
    const response = await fetch("/board/data", { cache: "no-store", headers: authorized() });
    if (response.status === 401 || response.status === 403) {
      stopPolling();
      askForKey(true, start);
    } else if (response.ok) render(await response.json());
  } catch (error) {
    // the stale warning tells people; the next poll tries again
  }
}

function startPolling() {
  if (board.poller !== null) return;
  showLink("polling");
  poll();
  board.poller = setInterval(poll, POLL_MS);
}

function stopPolling() {
  if (board.poller === null) return;
  clearInterval(board.poller);
  board.poller = null;
}

function onServerSentEvent(text) {
  const lines = text.split("\n");
  const kind = (lines.find((line) => line.startsWith("event:")) || "event: message").slice(6).trim();
  const data = lines.filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
  if (kind !== "snapshot" || !data) return;
  stopPolling();
  showLink("live");
  render(JSON.parse(data));
}

async function listen() {
  try {
    const response = await fetch("/board/events", { cache: "no-store", headers: authorized() });
    if (response.status === 401 || response.status === 403) {
      askForKey(true, start);
      return;
    }
    if (!response.ok || !response.body) throw new Error(`events answered ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        onServerSentEvent(buffered.slice(0, end));
        buffered = buffered.slice(end + 2);
      }
    }
  } catch (error) {
    // fall through: poll meanwhile
  }
  // A proxy that buffers or cuts the stream, or a server restarting: poll meanwhile, and try the
  // events again later, so a TV left on for weeks returns to live updates by itself.
  startPolling();
  setTimeout(listen, RETRY_EVENTS_MS);
}

let freshnessShown = false;

function start() {
  if (!keptKey()) {
    askForKey(false, start);
    return;
  }
  if (!freshnessShown) setInterval(showFreshness, 1000);
  freshnessShown = true;
  if (window.ReadableStream && window.TextDecoderStream) listen();
  else startPolling();
}

start();
