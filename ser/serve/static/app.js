// ser serve: the page. Plain JavaScript, no library, nothing fetched from the web.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, url: null, classify: null, attention: null, occlusion: null, limit: 1, busy: false };

// The plot area inside the canvas (room on the left and below for the axes).
const PAD = { left: 52, right: 6, top: 6, bottom: 24 };
const BACKGROUND = "#ffffff";
// ColorBrewer RdBu (11 classes), reversed: blue against, red for; readable with colour-blindness.
const RDBU = ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
  "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
const MAP_NAMES = { product: "t·h", top_down: "t", bottom_up: "h", occlusion: "occlusion" };

function palette(x) { // x in [-1, 1] -> [r, g, b]
  const u = (Math.max(-1, Math.min(1, x)) + 1) / 2 * (RDBU.length - 1);
  const i = Math.min(Math.floor(u), RDBU.length - 2), f = u - i;
  return [0, 1, 2].map((c) => Math.round(RDBU[i][c] * (1 - f) + RDBU[i + 1][c] * f));
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text || ""; }

async function post(path, params) {
  const query = new URLSearchParams({ name: state.file.name, ...params });
  const response = await fetch(`${path}?${query}`, { method: "POST", body: state.file });
  if (path === "/api/occlusion" && response.ok) return response;
  let body;
  try { body = await response.json(); } catch (e) { body = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// ---- input: drop, choose, record -------------------------------------------------------

async function useFile(file) {
  if (state.busy) return;
  showError("");
  state.busy = true;
  state.file = file;
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(file);
  $("audio").src = state.url;
  state.occlusion = null;
  setStatus(`classifying ${file.name} ...`);
  try {
    state.classify = await post("/api/classify");
    showResult(state.classify);
    const segments = state.classify.segments;
    const first = segments.length ? Math.max(0, segments.findIndex((s) => s.counted)) : -1;
    buildTimeline(segments, first);
    await showAttention(first >= 0 ? segments[first] : null);
    setStatus("");
  } catch (err) {
    setStatus("");
    $("result").hidden = true;
    $("view").hidden = true;
    state.classify = state.attention = null;
    showError(err.message);
  } finally {
    state.busy = false;
  }
}

function setUpInput() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) useFile(e.target.files[0]); e.target.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) useFile(e.dataTransfer.files[0]);
  });
  $("record").addEventListener("click", toggleRecording);
}

let recorder = null;

async function toggleRecording() {
  const button = $("record");
  if (recorder) { recorder.stop(); return; }
  showError("");
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("this browser cannot record here (recording needs https or localhost and a microphone)");
    return;
  }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch (err) {
    showError(`microphone: ${err.message}`);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    recorder = null;
    button.classList.remove("on");
    button.textContent = "Record";
    try {
      const wav = await toWav(new Blob(chunks, { type: chunks[0] ? chunks[0].type : "" }));
      useFile(new File([wav], "recording.wav", { type: "audio/wav" }));
    } catch (err) { showError(`recording: ${err.message}`); }
  };
  recorder.start();
  button.classList.add("on");
  button.textContent = "Stop";
}

// What the browser records (webm, ogg) decoded with the Web Audio API and written as 16-bit WAV.
async function toWav(blob) {
  const context = new (window.AudioContext || window.webkitAudioContext)();
  const audio = await context.decodeAudioData(await blob.arrayBuffer());
  context.close();
  const n = audio.length, rate = audio.sampleRate, mono = new Float32Array(n);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const data = audio.getChannelData(c);
    for (let i = 0; i < n; i++) mono[i] += data[i] / audio.numberOfChannels;
  }
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (o, s) => [...s].forEach((ch, i) => view.setUint8(o + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, mono[i])) * 32767, true);
  return view.buffer;
}

// ---- the result: label, probabilities, timeline ----------------------------------------

function showResult(result) {
  $("result").hidden = false;
  const p = result.scores[result.label];
  $("label").textContent = `${result.label} ${p.toFixed(2)}`;
  let note = `${result.file}, ${result.duration.toFixed(1)} s`;
  if (result.segments.length) note += `, mean of ${result.segments.filter((s) => s.counted).length} of ${result.segments.length} windows`;
  if (!result.speech) note += ". No voiced speech found: the label is a guess";
  $("file-note").textContent = note;
  const list = $("probs");
  list.textContent = "";
  Object.entries(result.scores).sort((a, b) => b[1] - a[1]).forEach(([label, prob]) => {
    const li = document.createElement("li");
    if (label === result.label) li.className = "best";
    li.innerHTML = `<span></span><span class="bar"><span></span></span><span class="p"></span>`;
    li.children[0].textContent = label;
    li.children[1].firstChild.style.width = `${(100 * prob).toFixed(1)}%`;
    li.children[2].textContent = prob.toFixed(2);
    list.appendChild(li);
  });
}

function buildTimeline(segments, selected) {
  const box = $("timeline");
  box.textContent = "";
  $("timeline-box").hidden = !segments.length;
  segments.forEach((s, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "option");
    b.setAttribute("aria-selected", String(i === selected));
    b.className = s.counted ? "" : "silent";
    b.textContent = `${s.start.toFixed(0)}s ${s.label}`;
    b.title = `${s.start.toFixed(1)}-${s.end.toFixed(1)} s: ${s.label} ${s.scores[s.label].toFixed(2)}${s.counted ? "" : " (no speech: left out)"}`;
    b.addEventListener("click", async () => {
      if (state.busy) return;
      [...box.children].forEach((c) => c.setAttribute("aria-selected", String(c === b)));
      state.busy = true;
      showError("");
      try { await showAttention(s); } catch (err) { showError(err.message); } finally { state.busy = false; }
    });
    box.appendChild(b);
  });
}

// ---- the attention view -----------------------------------------------------------------

async function showAttention(segment) {
  setStatus("computing the attention maps ...");
  const params = segment ? { start: segment.start, end: segment.end } : {};
  state.attention = await post("/api/attention", params);
  state.occlusion = null;
  const a = state.attention;
  const select = $("class");
  select.textContent = "";
  a.labels.forEach((label) => select.add(new Option(`${label} (${a.scores[label].toFixed(2)})`, label)));
  select.value = a.explained_class;
  $("map").querySelector('option[value="occlusion"]').disabled = true;
  if ($("map").value === "occlusion") $("map").value = "product";
  $("range").textContent = `${a.start.toFixed(2)}-${a.end.toFixed(2)} s shown`;
  $("explain").textContent = a.functionals
    ? `The label fuses the CNN (weight ${a.cnn_weight.toFixed(2)}) with a functionals head; the maps explain the CNN's part.`
    : "The maps explain the CNN's decision.";
  $("view").hidden = false;
  setStatus("");
  draw();
}

function currentGrid() {
  const a = state.attention, kind = $("map").value, cls = $("class").value;
  if (kind === "occlusion") return state.occlusion && state.occlusion.cls === cls ? state.occlusion.grid : null;
  if (kind === "bottom_up") return a.bottom_up;
  return a[kind][cls];
}

function symmetricLimit(grid) { // the 98th percentile of |value|, as the command's figures use
  const values = grid.flat().map(Math.abs).sort((x, y) => x - y);
  if (!values.length) return 1;
  const v = values[Math.min(values.length - 1, Math.floor(0.98 * (values.length - 1)))] || values[values.length - 1];
  return v > 0 ? v : 1;
}

function plotBox(canvas) {
  return { x: PAD.left, y: PAD.top, w: canvas.width - PAD.left - PAD.right, h: canvas.height - PAD.top - PAD.bottom };
}

function draw() {
  const a = state.attention;
  if (!a) return;
  const canvas = $("heatmap"), ctx = canvas.getContext("2d");
  const frames = a.spectrogram.length, bands = a.freqs.length;
  let grid = currentGrid();
  if (!grid) { $("map").value = "product"; grid = currentGrid(); }
  const limit = symmetricLimit(grid);
  state.limit = limit;
  let lo = Infinity, hi = -Infinity;
  a.spectrogram.forEach((row) => row.forEach((v) => { lo = Math.min(lo, v); hi = Math.max(hi, v); }));
  const image = new ImageData(frames, bands);
  for (let t = 0; t < frames; t++) {
    const cells = grid[Math.floor(t / a.time_stride)];
    for (let f = 0; f < bands; f++) {
      const grey = 250 - 220 * (a.spectrogram[t][f] - lo) / Math.max(hi - lo, 1e-9);
      const v = cells ? cells[Math.floor(f / a.freq_stride)] / limit : 0;
      const colour = palette(v), alpha = Math.min(1, 0.15 + 0.85 * Math.abs(v));
      const o = 4 * ((bands - 1 - f) * frames + t);
      for (let c = 0; c < 3; c++) image.data[o + c] = Math.round(colour[c] * alpha + grey * (1 - alpha));
      image.data[o + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = frames; off.height = bands;
  off.getContext("2d").putImageData(image, 0, 0);
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const box = plotBox(canvas);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, box.x, box.y, box.w, box.h);
  drawAxes(ctx, box, a);
  drawLegend(limit);
  drawOverlay();
}

function drawAxes(ctx, box, a) {
  ctx.fillStyle = "#333";
  ctx.strokeStyle = "#333";
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeRect(box.x - 0.5, box.y - 0.5, box.w + 1, box.h + 1);
  const bands = a.freqs.length;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  let lastY = Infinity;
  [100, 250, 500, 1000, 2000, 4000, 8000].forEach((hz) => {
    const j = a.freqs.findIndex((f) => f >= hz);
    if (j < 0) return;
    const y = box.y + box.h * (1 - (j + 0.5) / bands);
    if (lastY - y < 14) return;
    lastY = y;
    ctx.fillText(hz >= 1000 ? `${hz / 1000}k` : `${hz}`, box.x - 4, y);
  });
  ctx.save();
  ctx.translate(10, box.y + box.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.fillText("Hz", 0, 0);
  ctx.restore();
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const t0 = a.times[0], t1 = a.times[a.times.length - 1], span = Math.max(t1 - t0, 1e-3);
  const step = [0.1, 0.2, 0.5, 1, 2, 5, 10].find((s) => span / s <= 10) || 20;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    ctx.fillText(`${+t.toFixed(2)} s`, box.x + box.w * (t - t0) / span, box.y + box.h + 4);
  }
}

function drawLegend(limit) {
  const canvas = $("legend"), ctx = canvas.getContext("2d"), w = canvas.width - 60;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let x = 0; x < w; x++) {
    const [r, g, b] = palette(2 * x / (w - 1) - 1);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(30 + x, 2, 1, 14);
  }
  ctx.strokeStyle = "#555";
  ctx.strokeRect(29.5, 1.5, w + 1, 15);
  ctx.fillStyle = "#222";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "top";
  const kind = $("map").value, fmt = (v) => Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(2);
  ctx.textAlign = "left"; ctx.fillText(`−${fmt(limit)}`, 30, 19);
  ctx.textAlign = "center"; ctx.fillText(`0 ${MAP_NAMES[kind]}`, 30 + w / 2, 19);
  ctx.textAlign = "right"; ctx.fillText(`+${fmt(limit)}`, 30 + w, 19);
  canvas.title = kind === "bottom_up" ? "h: blue low, red high attention" : "red: evidence for the class; blue: against";
}

// ---- hover, click, playhead -------------------------------------------------------------

function cellAt(event) {
  const a = state.attention, canvas = $("overlay");
  if (!a) return null;
  const rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * canvas.width / rect.width;
  const y = (event.clientY - rect.top) * canvas.height / rect.height;
  const box = plotBox(canvas);
  if (x < box.x || x >= box.x + box.w || y < box.y || y >= box.y + box.h) return null;
  const frames = a.spectrogram.length, bands = a.freqs.length;
  const t = Math.min(frames - 1, Math.floor((x - box.x) / box.w * frames));
  const f = Math.min(bands - 1, Math.floor((1 - (y - box.y) / box.h) * bands));
  return { t, f, time: a.times[t] };
}

function bandEdges(a, f) { // the band's span, halfway to its neighbours' centres
  const c = a.freqs, lo = f > 0 ? (c[f - 1] + c[f]) / 2 : c[0] - (c[1] - c[0]) / 2;
  const hi = f < c.length - 1 ? (c[f] + c[f + 1]) / 2 : c[f] + (c[f] - c[f - 1]) / 2;
  return [Math.max(0, lo), hi];
}

function setUpPointer() {
  const overlay = $("overlay"), audio = $("audio");
  overlay.addEventListener("mousemove", (e) => {
    const cell = cellAt(e), a = state.attention;
    if (!cell) { $("readout").textContent = ""; return; }
    const grid = currentGrid();
    const row = grid && grid[Math.floor(cell.t / a.time_stride)];
    const value = row ? row[Math.floor(cell.f / a.freq_stride)] : NaN;
    const [lo, hi] = bandEdges(a, cell.f);
    const kind = $("map").value, cls = kind === "bottom_up" ? "" : ` (${$("class").value})`;
    $("readout").textContent = `${cell.time.toFixed(2)} s · ${lo.toFixed(0)}-${hi.toFixed(0)} Hz · ${MAP_NAMES[kind]}${cls} = ${value.toFixed(3)}`;
  });
  overlay.addEventListener("mouseleave", () => { $("readout").textContent = ""; });
  overlay.addEventListener("click", (e) => {
    const cell = cellAt(e);
    if (!cell) return;
    audio.currentTime = cell.time;
    const playing = audio.play();
    if (playing) playing.catch(() => {});
    drawOverlay();
  });
  const tick = () => { drawOverlay(); if (!audio.paused) requestAnimationFrame(tick); };
  audio.addEventListener("play", () => requestAnimationFrame(tick));
  audio.addEventListener("seeked", drawOverlay);
  audio.addEventListener("pause", drawOverlay);
}

function drawOverlay() {
  const canvas = $("overlay"), ctx = canvas.getContext("2d"), a = state.attention;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!a) return;
  const box = plotBox(canvas), t0 = a.times[0], t1 = a.times[a.times.length - 1] + (a.times[1] - a.times[0] || 0.01);
  const now = $("audio").currentTime;
  if (now < t0 || now > t1) return;
  const x = box.x + box.w * (now - t0) / (t1 - t0);
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, box.y); ctx.lineTo(x, box.y + box.h); ctx.stroke();
}

// ---- occlusion ---------------------------------------------------------------------------

async function occlude() {
  if (state.busy || !state.attention) return;
  state.busy = true;
  showError("");
  const bar = $("occlusion-progress"), cls = $("class").value, a = state.attention;
  bar.hidden = false; bar.value = 0;
  setStatus(`occlusion for ${cls}: hiding each cell in turn ...`);
  try {
    const response = await post("/api/occlusion", { class: cls, start: a.start, end: a.end });
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "", result = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const line of lines.filter(Boolean)) {
        const msg = JSON.parse(line);
        if (msg.error) throw new Error(msg.error);
        if (msg.result) result = msg.result;
        else if (msg.total) bar.value = msg.done / msg.total;
      }
    }
    if (!result) throw new Error("the occlusion stream ended without a result");
    state.occlusion = { cls, grid: result.occlusion, agreement: result.agreement };
    $("map").querySelector('option[value="occlusion"]').disabled = false;
    $("map").value = "occlusion";
    const r = result.agreement;
    setStatus(`occlusion for ${cls}: rank correlation with t·h ${r === null ? "n/a" : r.toFixed(2)}`);
    draw();
  } catch (err) {
    setStatus("");
    showError(err.message);
  } finally {
    bar.hidden = true;
    state.busy = false;
  }
}

// ---- downloads ---------------------------------------------------------------------------

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

function stem() { return (state.file ? state.file.name : "audio").replace(/\.[^.]*$/, ""); }

function savePng() {
  const main = $("heatmap"), legend = $("legend");
  const out = document.createElement("canvas");
  out.width = main.width; out.height = main.height + legend.height + 22;
  const ctx = out.getContext("2d");
  ctx.fillStyle = BACKGROUND; ctx.fillRect(0, 0, out.width, out.height);
  ctx.fillStyle = "#222"; ctx.font = "13px system-ui, sans-serif"; ctx.textBaseline = "top";
  const a = state.attention, kind = $("map").value;
  ctx.fillText(`${a.file}: ${a.label} ${a.probability.toFixed(2)}; ${MAP_NAMES[kind]}${kind === "bottom_up" ? "" : " of " + $("class").value}`, PAD.left, 4);
  ctx.drawImage(main, 0, 22);
  ctx.drawImage(legend, PAD.left, main.height + 22);
  out.toBlob((blob) => download(blob, `${stem()}-attention.png`), "image/png");
}

function saveJson() {
  const body = { classify: state.classify, attention: state.attention, occlusion: state.occlusion };
  download(new Blob([JSON.stringify(body, null, 1)], { type: "application/json" }), `${stem()}-ser.json`);
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  setUpInput();
  setUpPointer();
  $("map").addEventListener("change", draw);
  $("class").addEventListener("change", draw);
  $("occlude").addEventListener("click", occlude);
  $("save-png").addEventListener("click", savePng);
  $("save-json").addEventListener("click", saveJson);
  try {
    const model = await (await fetch("/api/model")).json();
    $("model").textContent = `model: ${model.model} (${model.labels.length} classes) · uploads up to ${model.max_bytes / 1e6} MB, ${model.max_seconds} s`;
    $("model").title = Object.entries(model.about).map(([k, v]) => `${k}: ${v}`).join("\n");
  } catch (err) { showError(`cannot reach the server: ${err.message}`); }
}

start();
