"""The live view's pages: self-contained HTML files (no CDN, nothing else to fetch): `PAGE` for one
camera, `SITE_PAGE` for a site (runtime/site.py), a grid of every camera with its figures and counts.

It reads `/stream.mjpg` with fetch() and draws each JPEG on a canvas, so it knows each frame's
capture time (the part's X-Captured header) and shows the latency from capture to the browser;
the clock offset to the device comes from `/figures.json`, polled twice a second for the figures.
A `?token=` in the page's address is passed on to both.
"""

COMMON_JS = r"""
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;

// names come from the counts and cameras files: escaped, never markup
const escaped = (v) => String(v).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
function rows(selector, items, root = document) {
  root.querySelector(`${selector} tbody`).innerHTML =
    items.map((cells) => "<tr>" + cells.map((c, i) => `<td class="${i ? "v" : ""}">${escaped(c)}</td>`).join("") + "</tr>").join("");
}
const fmt = (v, digits = 1) => v === null || v === undefined ? "–" : Number(v).toFixed(digits);
const capturedOf = (head) => Number((/x-captured:\s*([\d.]+)/i.exec(head) || [])[1]);

// the server's figures; the fastest round trip so far sets the server-to-browser clock offset
let offsetMs = 0, bestRtt = Infinity;
async function fetchFigures() {
  const sent = Date.now();
  const reply = await fetch(withToken("/figures.json"), {cache: "no-store"});
  const f = await reply.json(), got = Date.now();
  if (got - sent < bestRtt) { bestRtt = got - sent; offsetMs = f.time * 1000 - (sent + got) / 2; }
  return f;
}

function indexOf(buf, pattern, from) {
  outer: for (let i = from; i <= buf.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

// a multipart (MJPEG) reply, part by part: onPart(jpeg bytes, part headers as text)
async function readParts(path, onOpen, onPart) {
  const headEnd = new TextEncoder().encode("\r\n\r\n");
  const reply = await fetch(withToken(path), {cache: "no-store"});
  if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
  onOpen();
  const reader = reply.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    const joined = new Uint8Array(buf.length + value.length); joined.set(buf); joined.set(value, buf.length); buf = joined;
    for (;;) {
      const end = indexOf(buf, headEnd, 0);
      if (end < 0) break;
      const head = new TextDecoder().decode(buf.subarray(0, end));
      const length = Number((/content-length:\s*(\d+)/i.exec(head) || [])[1]);
      if (buf.length < end + 4 + length) break;
      onPart(buf.slice(end + 4, end + 4 + length), head);
      buf = buf.slice(end + 4 + length);
    }
  }
}

// the stream at `path`, part by part to onPart, for as long as the page is open: its state in #status,
// a new try 2 s after it ends or fails
async function keepStreaming(path, onPart) {
  const status = document.getElementById("status");
  try {
    await readParts(path, () => { status.textContent = ""; }, onPart);
    status.textContent = "stream ended";
  } catch (err) { status.textContent = "stream: " + err.message + " (retrying)"; }
  setTimeout(() => keepStreaming(path, onPart), 2000);
}
"""

STYLE = r"""
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #15181c; color: #e6e6e6; }
  header { padding: 8px 16px; background: #22272e; display: flex; gap: 16px; align-items: baseline; }
  header b { font-size: 16px; } header span { color: #9aa4ad; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 12px; }
  td, th { padding: 2px 8px; border-bottom: 1px solid #2d333b; text-align: left; }
  td.v { text-align: right; font-variant-numeric: tabular-nums; }
  th { color: #9aa4ad; font-weight: normal; }
  #status { color: #f0883e; }
"""


def head(title: str) -> str:
    """A page's start, up to its own style rules: doctype, meta tags, title, the shared STYLE."""
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>" + STYLE)


PAGE = head("edgecnn live") + r"""
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
  #video { background: #000; width: min(100%, 800px); max-height: calc(100vh - 80px); object-fit: contain; }
  aside { min-width: 280px; flex: 1; }
  #fpsplot { width: 100%; height: 70px; background: #1c2128; }
</style>
</head>
<body>
<header><b>edgecnn live</b><span id="source"></span><span id="status">connecting…</span></header>
<main>
  <canvas id="video" width="640" height="480"></canvas>
  <aside>
    <table id="figures"><tbody></tbody></table>
    <canvas id="fpsplot" width="300" height="70"></canvas>
    <table id="lines"><thead><tr><th>line</th><th>in</th><th>out</th></tr></thead><tbody></tbody></table>
    <table id="zones"><thead><tr><th>zone</th><th>now</th><th>longest stay (s)</th></tr></thead><tbody></tbody></table>
  </aside>
</main>
<script>
"use strict";
""" + COMMON_JS + r"""
const video = document.getElementById("video"), ctx = video.getContext("2d");
let browserLatency = null, framesShown = 0, fpsHistory = [];

async function pollFigures() {
  try {
    const f = await fetchFigures();
    document.getElementById("source").textContent = f.source ? `${f.source} · ${f.model}` : "";
    const stages = Object.entries(f.stages_ms || {}).map(([k, v]) => [`${k} p50 (ms)`, fmt(v)]);
    rows("#figures", [["FPS", fmt(f.fps)], ["capture → output (ms)", fmt(f.latency_ms, 0)],
                     ["capture → browser (ms)", fmt(browserLatency, 0)], ["tracks now", f.tracks_now ?? "–"],
                     ["tracks so far", f.tracks ?? "–"], ["frames", f.frames ?? "–"], ["dropped by the source", f.dropped ?? "–"],
                     ["viewers", f.viewers], ["frames shown here", framesShown], ...stages]);
    const counts = f.counts || {lines: {}, zones: {}};
    rows("#lines", Object.entries(counts.lines).map(([name, c]) => [name, c.in, c.out]));
    rows("#zones", Object.entries(counts.zones).map(([name, z]) =>
      [name, z.occupancy, fmt(Math.max(0, ...Object.values(z.dwell_s)))]));
    fpsHistory = [...fpsHistory, f.fps || 0].slice(-120);
    plotFps();
  } catch (err) { document.getElementById("status").textContent = "figures: " + err; }
  setTimeout(pollFigures, 500);
}

function plotFps() {
  const c = document.getElementById("fpsplot"), g = c.getContext("2d"), top = Math.max(1, ...fpsHistory) * 1.2;
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = "#58a6ff"; g.lineWidth = 2; g.beginPath();
  fpsHistory.forEach((v, i) => { const x = i * c.width / 119, y = c.height - v / top * c.height; i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke(); g.fillStyle = "#9aa4ad"; g.fillText("FPS, last minute", 4, 12);
}

let pending = null, drawing = false;
async function show(jpeg, captured) {
  pending = {jpeg, captured};
  if (drawing) return;  // the newest part waits; older ones are skipped, as the server skips for us
  drawing = true;
  while (pending) {
    const {jpeg, captured} = pending; pending = null;
    try {
      const bitmap = await createImageBitmap(new Blob([jpeg], {type: "image/jpeg"}));
      if (video.width !== bitmap.width) { video.width = bitmap.width; video.height = bitmap.height; }
      ctx.drawImage(bitmap, 0, 0); bitmap.close();
      framesShown++;
      browserLatency = Date.now() + offsetMs - captured * 1000;
    } catch (err) { /* a damaged part: wait for the next */ }
  }
  drawing = false;
}

pollFigures();
keepStreaming("/stream.mjpg", (jpeg, head) => show(jpeg, capturedOf(head)));
</script>
</body>
</html>
"""

SITE_PAGE = head("edgecnn site") + r"""
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; padding: 12px; }
  section { background: #1c2128; padding: 8px; min-width: 0; }
  section table { table-layout: fixed; } section td:first-child { width: 62%; }
  section .src { color: #9aa4ad; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  section h2 { margin: 0 0 6px; font-size: 15px; display: flex; justify-content: space-between; }
  section h2 .state { font-weight: normal; color: #9aa4ad; }
  section h2 .state.down { color: #f85149; } section h2 .state.up { color: #3fb950; }
  section canvas { background: #000; width: 100%; aspect-ratio: 4 / 3; object-fit: contain; }
</style>
</head>
<body>
<header><b>edgecnn site</b><span id="summary"></span><span id="status">connecting…</span></header>
<main id="grid"></main>
<script>
"use strict";
""" + COMMON_JS + r"""
const cards = {};  // camera name → {root, canvas, latency}
let framesShown = 0;

function card(name) {
  if (cards[name]) return cards[name];
  const root = document.createElement("section");
  root.dataset.camera = name;
  root.innerHTML = `<h2><span class="name"></span><span class="state"></span></h2><div class="src"></div>
    <canvas width="640" height="480"></canvas>
    <table class="figures"><tbody></tbody></table>
    <table class="lines"><thead><tr><th>line</th><th>in</th><th>out</th></tr></thead><tbody></tbody></table>
    <table class="zones"><thead><tr><th>zone</th><th>now</th><th>longest stay (s)</th></tr></thead><tbody></tbody></table>`;
  root.querySelector(".name").textContent = name;
  document.getElementById("grid").appendChild(root);
  return (cards[name] = {root, canvas: root.querySelector("canvas"), latency: null, shown: 0, pending: null, drawing: false});
}

function render(name, f) {
  const c = card(name), state = f.state || "up";
  const label = c.root.querySelector(".state");
  label.textContent = state; label.className = "state " + (state === "up" ? "up" : "down");
  rows(".figures", [["FPS", fmt(f.fps)], ["capture → output (ms)", fmt(f.latency_ms, 0)],
                   ["capture → browser (ms)", fmt(c.latency, 0)], ["tracks now", f.tracks_now ?? "–"],
                   ["tracks so far", f.tracks ?? "–"], ["frames", f.frames ?? "–"],
                   ["dropped by the source", f.dropped ?? "–"], ["reconnects", f.reconnects ?? "–"]], c.root);
  const src = c.root.querySelector(".src");
  src.textContent = src.title = f.source || "";
  const counts = f.counts || {lines: {}, zones: {}};
  rows(".lines", Object.entries(counts.lines).map(([line, n]) => [line, n.in, n.out]), c.root);
  rows(".zones", Object.entries(counts.zones).map(([zone, z]) =>
    [zone, z.occupancy, fmt(Math.max(0, ...Object.values(z.dwell_s)))]), c.root);
}

async function pollFigures() {
  try {
    const f = await fetchFigures();
    const cameras = Object.entries(f.cameras || {});
    cameras.forEach(([name, figures]) => render(name, figures));
    const up = cameras.filter(([, g]) => (g.state || "up") === "up").length;
    const total = cameras.reduce((sum, [, g]) => sum + (g.fps || 0), 0);
    document.getElementById("summary").textContent =
      `${cameras.length} cameras, ${up} up · ${fmt(total)} FPS in all`;
  } catch (err) { document.getElementById("status").textContent = "figures: " + err; }
  setTimeout(pollFigures, 500);
}

async function show(name, jpeg, captured) {
  const c = card(name);
  c.pending = {jpeg, captured};
  if (c.drawing) return;  // this camera's newest part waits; older ones are skipped
  c.drawing = true;
  while (c.pending) {
    const {jpeg, captured} = c.pending; c.pending = null;
    try {
      const bitmap = await createImageBitmap(new Blob([jpeg], {type: "image/jpeg"}));
      if (c.canvas.width !== bitmap.width) { c.canvas.width = bitmap.width; c.canvas.height = bitmap.height; }
      c.canvas.getContext("2d").drawImage(bitmap, 0, 0); bitmap.close();
      c.shown++; framesShown++;
      c.latency = Date.now() + offsetMs - captured * 1000;
    } catch (err) { /* a damaged part: wait for the next */ }
  }
  c.drawing = false;
}

pollFigures();
keepStreaming("/site.mjpg", (jpeg, head) => {
  const name = ((/x-camera:\s*([^\r\n]+)/i.exec(head) || [])[1] || "").trim();
  show(name, jpeg, capturedOf(head));
});
</script>
</body>
</html>
"""
