// The live page: candles + volume for the selected pair from /api/bars (polled each second; an unchanged answer is
// a 304), the health panel from /api/status (every 2 s). Live bars (not yet in Gold) are drawn in amber.
// window.lakehouse exposes what is shown, for tests and the latency benchmark (draws: when each newest bar was drawn).
"use strict";
const LC = window.LightweightCharts;
const MINUTES = 120;
const state = { symbol: null, etag: null, bars: [], draws: [], status: null, pairs: [], fitted: false };
window.lakehouse = state;

const chart = LC.createChart(document.getElementById("chart"), {
  autoSize: true,
  layout: { background: { color: "#101418" }, textColor: "#d8dee4" },
  grid: { vertLines: { color: "#1c232b" }, horzLines: { color: "#1c232b" } },
  timeScale: { timeVisible: true, secondsVisible: false },
});
const candles = chart.addSeries(LC.CandlestickSeries, {
  upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
});
const volume = chart.addSeries(LC.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "" });
volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });

function precisionOf(price) {
  return price >= 1000 ? 2 : price >= 10 ? 3 : price >= 1 ? 4 : 6;
}

function render() {
  const bars = state.bars;
  candles.setData(bars.map((b) => {
    const bar = { time: Date.parse(b.window_start) / 1000, open: +b.open, high: +b.high, low: +b.low, close: +b.close };
    return b.live ? { ...bar, color: "#f0a500", wickColor: "#f0a500", borderColor: "#f0a500" } : bar;
  }));
  volume.setData(bars.map((b) => ({
    time: Date.parse(b.window_start) / 1000, value: +b.volume,
    color: b.live ? "#f0a50088" : (+b.close >= +b.open ? "#26a69a66" : "#ef535066"),
  })));
  if (bars.length) {
    const p = precisionOf(+bars[bars.length - 1].close);
    candles.applyOptions({ priceFormat: { type: "price", precision: p, minMove: Math.pow(10, -p) } });
  }
  if (!state.fitted && bars.length) { chart.timeScale().fitContent(); state.fitted = true; }
  const newest = bars[bars.length - 1];
  const set = (id, text) => { document.getElementById(id).textContent = text; };
  set("newest-symbol", state.symbol || "-");
  set("newest-window", newest ? newest.window_start : "-");
  const badge = document.getElementById("newest-state");
  badge.textContent = newest ? (newest.live ? "live" : "Gold") : "-";
  badge.className = "state " + (newest ? (newest.live ? "live" : "gold") : "");
  for (const k of ["open", "high", "low", "close", "volume", "vwap"]) set("bar-" + k, newest ? (newest[k] ?? "-") : "-");
  set("bar-trades", newest ? String(newest.trade_count) : "-");
  if (newest) {
    state.draws.push({ t: Date.now(), symbol: state.symbol, window_start: newest.window_start,
                       trade_count: newest.trade_count, live: newest.live });
    if (state.draws.length > 20000) state.draws.splice(0, 10000);
  }
}

async function pollBars() {
  const symbol = state.symbol;
  if (symbol) {
    try {
      const headers = state.etag ? { "If-None-Match": state.etag } : {};
      const r = await fetch(`/api/bars?symbol=${encodeURIComponent(symbol)}&minutes=${MINUTES}`, { headers });
      if (r.status === 200 && symbol === state.symbol) {
        state.etag = r.headers.get("ETag");
        state.bars = await r.json();
        render();
      }
    } catch (e) { /* the server restarts: try again next second */ }
  }
  setTimeout(pollBars, 1000);
}

function select(symbol) {
  state.symbol = symbol; state.etag = null; state.bars = []; state.fitted = false;
  for (const b of document.querySelectorAll("#pairs button")) b.classList.toggle("selected", b.dataset.symbol === symbol);
  render();
}

async function pollPairs() {
  try {
    const pairs = await (await fetch("/api/pairs")).json();
    if (JSON.stringify(pairs) !== JSON.stringify(state.pairs)) {
      state.pairs = pairs;
      const nav = document.getElementById("pairs");
      nav.replaceChildren(...pairs.map((p) => {
        const b = document.createElement("button");
        b.textContent = p; b.dataset.symbol = p; b.onclick = () => { select(p); pollNow(); };
        return b;
      }));
      if (!pairs.includes(state.symbol) && pairs.length) select(pairs[0]);
      else select(state.symbol);
    }
  } catch (e) { /* try again */ }
  setTimeout(pollPairs, 5000);
}

async function pollNow() {
  try {
    const r = await fetch(`/api/bars?symbol=${encodeURIComponent(state.symbol)}&minutes=${MINUTES}`);
    if (r.status === 200) { state.etag = r.headers.get("ETag"); state.bars = await r.json(); render(); }
  } catch (e) { /* next poll */ }
}

function ago(s) {
  if (s === null || s === undefined) return "-";
  return s < 120 ? `${s.toFixed(0)} s ago` : s < 7200 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

function notes(c) {
  const d = c.details || {};
  const parts = [];
  if (!c.healthy || ["starting", "stopped", "stopping"].includes(c.state)) { if (c.reason) parts.push(c.reason); }
  if (c.name === "producer") {
    parts.push(["trades", "gaps", "reconnects", "malformed", "undelivered"].map((k) => `${k} ${d[k] ?? 0}`).join(", "));
  }
  if (c.name === "gold" && d.trade_to_bar_s) {
    parts.push(`trade → bar ${d.trade_to_bar_s.min.toFixed(1)}–${d.trade_to_bar_s.max.toFixed(1)} s`);
  }
  if (c.name === "silver" && d.inserted !== undefined) parts.push(`inserted ${d.inserted}, duplicates ${d.duplicates}`);
  if (c.name === "page" && d.url) parts.push(d.url);
  return parts.join("; ");
}

function renderStatus(report) {
  state.status = report;
  const verdict = document.getElementById("verdict");
  verdict.textContent = `${report.verdict} (make status exit ${report.exit_code})`;
  verdict.className = "state " + report.verdict.split(" ")[0];
  const rows = report.components.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.component = c.name;
    if (!c.healthy) tr.className = "bad";
    const behind = c.behind_unit ? (c.behind === null ? "unknown" : `${c.behind} ${c.behind_unit}` +
      (c.name === "silver" && c.behind_rows !== null ? ` (${c.behind_rows} rows)` : "")) : "-";
    const batch = c.last_batch_age_s === null ? "-" : `${c.batch !== null ? "#" + c.batch + " " : ""}${ago(c.last_batch_age_s)}`;
    const cells = [c.name, c.state, batch, c.rows_per_s === null ? "-" : c.rows_per_s.toFixed(1), behind,
                   c.table_version === null ? "-" : String(c.table_version), notes(c)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 1) { const s = document.createElement("span"); s.className = "state " + c.state; s.textContent = text; td.append(s); }
      else td.textContent = text;
      tr.append(td);
    });
    return tr;
  });
  document.querySelector("#components tbody").replaceChildren(...rows);
  const page = report.page || {};
  document.getElementById("checked").textContent =
    `checked ${new Date(report.checked_at_us / 1000).toISOString()}; this page read ${page.records ?? 0} topic ` +
    `records (${page.live_trades ?? 0} trades, ${Object.values(page.bad_records || {}).reduce((a, b) => a + b, 0)} ` +
    `not trades); Gold version ${page.gold_version ?? "-"}`;
}

async function pollStatus() {
  try { renderStatus(await (await fetch("/api/status")).json()); } catch (e) { /* try again */ }
  setTimeout(pollStatus, 2000);
}

pollPairs();
pollBars();
pollStatus();
