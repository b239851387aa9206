// The flow's page. Everything it shows comes from /api/v1 of this origin and is
// put on the page with textContent or as SVG text nodes: nothing a message holds
// is ever read as HTML. The token comes after '#' in the address, is kept in this
// tab's sessionStorage and removed from the address bar.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 128;
const NODE_H = 62;
const GAP_X = 40;
const ROW_GAP = 34;
const MAX_SHOWN = 200;
const PLAY_SAMPLES = 20;

const state = {
  token: "",
  flow: null,
  nodes: [],
  figures: null,
  previous: null,
  selected: null,
  tap: null,
  paused: false,
  held: [],
  collected: [],
  collector: null,
  edits: {},
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function readToken() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("dataflow-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("dataflow-token") || "";
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

async function api(path, options) {
  const init = Object.assign({}, options || {});
  init.headers = Object.assign({ Authorization: "Bearer " + state.token }, init.headers || {});
  const response = await fetch(path, init);
  if (!response.ok) {
    let reason = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) reason = body.error;
    } catch (_) { /* not JSON */ }
    const error = new Error(reason);
    error.status = response.status;
    throw error;
  }
  return response;
}

const number = (n) => (n >= 10000 ? Math.round(n).toLocaleString("en") : String(Math.round(n * 10) / 10));
const pointLabel = (point) => point.replace("step:", "step ").replace("route:", "route ");

// ---------------------------------------------------------------- the graph

function layout(flow) {
  const nodes = [{ id: "source", point: "source", kind: "source", label: flow.source.type, title: "source" }];
  for (const step of flow.steps) {
    nodes.push({
      id: "step:" + step.index,
      point: "step:" + step.index,
      kind: step.custom ? "custom" : "builtin",
      label: step.type,
      title: "step " + step.index,
      call: step.call,
      fused: step.fused,
      index: step.index,
    });
  }
  nodes.push({ id: "sink", point: "sink", kind: "sink", label: flow.sink.type, title: "sink" });
  nodes.forEach((node, column) => {
    node.x = 16 + column * (NODE_W + GAP_X);
    node.y = 34;
    node.column = column;
  });
  const sinkNode = nodes[nodes.length - 1];
  flow.routes.forEach((route, r) => {
    nodes.push({
      id: "route:" + r, point: "route:" + r, kind: "sink", label: route.sink,
      title: "route " + r, condition: route.condition, from: "step:" + route.step,
      x: sinkNode.x, y: 34 + (r + 1) * (NODE_H + ROW_GAP),
    });
  });
  const rows = 1 + flow.routes.length;
  nodes.push({
    id: "errors", point: "errors", kind: "errors", label: flow.errors ? flow.errors.type : "none",
    title: flow.errors ? "error sink" : "errors (no error sink)",
    x: 16 + NODE_W + GAP_X, y: 34 + rows * (NODE_H + ROW_GAP) + 10,
  });
  return nodes;
}

function drawGraph() {
  const graph = $("graph");
  graph.replaceChildren();
  const nodes = state.nodes;
  const width = Math.max(...nodes.map((n) => n.x + NODE_W)) + 24;
  const height = Math.max(...nodes.map((n) => n.y + NODE_H)) + 24;
  graph.setAttribute("viewBox", "0 0 " + width + " " + height);
  graph.setAttribute("width", width);
  graph.setAttribute("height", height);
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  graph.append(defs);

  // Fused runs of built-ins: one call, drawn as one frame around its steps.
  const calls = {};
  for (const node of nodes) {
    if (node.fused) (calls[node.call] = calls[node.call] || []).push(node);
  }
  for (const members of Object.values(calls)) {
    const first = members[0];
    const last = members[members.length - 1];
    graph.append(svg("rect", { x: first.x - 8, y: first.y - 22, width: last.x - first.x + NODE_W + 16, height: NODE_H + 28, rx: 10, class: "fused" }));
    graph.append(svg("text", { x: first.x - 2, y: first.y - 10, class: "fused-label" }, "fused: one call, steps " + first.index + "–" + last.index));
  }

  const main = nodes.filter((n) => n.column !== undefined);
  for (let i = 0; i + 1 < main.length; i++) edge(graph, main[i], main[i + 1], "edge:" + main[i].id);
  for (const node of nodes.filter((n) => n.from)) {
    const from = nodes.find((n) => n.id === node.from);
    if (from) edge(graph, from, node, "edge:" + node.id, true);
  }
  // Failures of any step (and messages the source or a sink refused) go to
  // the error sink: a dashed bus under the chain, one drop from each node.
  const errors = nodes.find((n) => n.id === "errors");
  const feeding = main.filter((n) => n.kind !== "sink");
  const busY = main[0].y + NODE_H + 24;
  const firstX = feeding[0].x + NODE_W / 2;
  const lastX = feeding[feeding.length - 1].x + NODE_W / 2;
  for (const node of feeding) {
    const x = node.x + NODE_W / 2;
    graph.append(svg("path", { d: "M " + x + " " + (node.y + NODE_H) + " V " + busY, class: "edge errors-edge" }));
  }
  graph.append(svg("path", { d: "M " + firstX + " " + busY + " H " + lastX, class: "edge errors-edge" }));
  graph.append(svg("path", {
    d: "M " + firstX + " " + busY + " V " + (errors.y + NODE_H / 2) + " H " + (errors.x - 2),
    class: "edge errors-edge", "marker-end": "url(#arrow)",
  }));
  graph.append(svg("text", { x: firstX + 6, y: errors.y + NODE_H / 2 - 6, class: "edge-label", id: "edge:errors" }, ""));

  for (const node of nodes) {
    const group = svg("g", {
      class: "node " + node.kind + (state.selected === node.point ? " selected" : ""),
      transform: "translate(" + node.x + "," + node.y + ")",
      tabindex: 0, role: "button", "data-point": node.point,
      "aria-label": node.title + ": " + node.label + ". Watch its messages",
    });
    group.append(svg("title", {}, node.title + " (" + node.label + ")" + (node.condition ? " when " + node.condition : "")));
    group.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 8 }));
    group.append(svg("text", { x: 10, y: 18, class: "node-title" }, node.title));
    group.append(svg("text", { x: 10, y: 36, class: "node-label" }, clip(node.label, 16)));
    group.append(svg("text", { x: 10, y: 53, class: "node-count", id: "count:" + node.id }, ""));
    group.addEventListener("click", () => select(node.point));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(node.point);
      }
    });
    graph.append(group);
  }
}

function clip(text, length) {
  return text.length > length ? text.slice(0, length - 1) + "…" : text;
}

function edge(graph, from, to, id, down) {
  const x1 = from.x + NODE_W;
  const y1 = from.y + NODE_H / 2;
  let d;
  if (down) {
    const midX = from.x + NODE_W / 2;
    d = "M " + midX + " " + (from.y + NODE_H) + " V " + (to.y + NODE_H / 2) + " H " + to.x;
  } else {
    d = "M " + x1 + " " + y1 + " H " + (to.x - 2);
  }
  graph.append(svg("path", { d, class: "edge", "marker-end": "url(#arrow)" }));
  const labelX = down ? from.x + NODE_W / 2 + 6 : x1 + 4;
  const labelY = down ? to.y + NODE_H / 2 - 6 : y1 - 6;
  graph.append(svg("text", { x: labelX, y: labelY, class: "edge-label", id }, ""));
}

function setText(id, text) {
  const node = document.getElementById(id);
  if (node) node.textContent = text;
}

// ---------------------------------------------------------------- figures

function countsOf(figures) {
  const counts = { source: { out: figures.read, failed: figures.read_failed } };
  for (const step of figures.steps) counts["step:" + step.index] = { in: step.in, out: step.out, failed: step.failed };
  for (const sink of figures.sinks) counts[sink.at] = { in: sink.written, failed: sink.refused };
  return counts;
}

// Where the source has committed to: one place in full, many as a count
// (`/api/v1/figures` lists them all).
function positionText(position) {
  const places = Object.entries(position || {});
  if (places.length === 0) return "";
  if (places.length === 1) return " · committed " + places[0][0] + " " + places[0][1];
  return " · " + places.length + " places committed";
}

function showFigures(figures) {
  // The processor's clock, so a busy or throttled page does not skew rates.
  const now = Date.parse(figures.time);
  const counts = countsOf(figures);
  const before = state.previous;
  const seconds = before ? (now - before.time) / 1000 : 0;
  const rate = (id, key) => {
    if (!before || seconds <= 0 || !before.counts[id]) return null;
    return Math.max(0, ((counts[id][key] || 0) - (before.counts[id][key] || 0)) / seconds);
  };
  setText("phase", figures.phase);
  $("phase").className = "phase " + figures.phase;
  setText("total-read", number(figures.read));
  setText("total-written", number(figures.written));
  setText("total-failed", number(figures.failed));
  setText("rate-read", number(figures.read_rate));
  for (const node of state.nodes) {
    const c = counts[node.id] || {};
    let text;
    if (node.kind === "source") text = number(c.out || 0) + " read" + positionText(figures.position);
    else if (node.id.startsWith("step:")) text = number(c.in || 0) + " → " + number(c.out || 0);
    else text = number(c.in || 0) + " written";
    if (c.failed) text += " · " + number(c.failed) + " failed";
    setText("count:" + node.id, text);
  }
  const main = state.nodes.filter((n) => n.column !== undefined);
  for (let i = 0; i + 1 < main.length; i++) {
    const from = main[i];
    const r = from.kind === "source" ? rate("source", "out") : rate(from.id, "out");
    setText("edge:" + from.id, r === null ? "" : number(r) + "/s");
  }
  for (const node of state.nodes.filter((n) => n.from)) {
    const r = rate(node.id, "in");
    setText("edge:" + node.id, r === null ? "" : number(r) + "/s");
  }
  const e = rate("errors", "in");
  setText("edge:errors", e === null ? "failures" : "failures " + number(e) + "/s");
  state.previous = { time: now, counts };
}

async function pollFigures() {
  try {
    const response = await api("/api/v1/figures");
    showFigures(await response.json());
    if (!$("notice").dataset.sticky) notice("");
  } catch (error) {
    notice("The flow does not answer: " + error.message);
    setText("phase", "unreachable");
  }
}

async function pollHistory() {
  try {
    const response = await api("/api/v1/figures/history");
    drawChart(await response.json());
  } catch (_) { /* shown by pollFigures */ }
}

function drawChart(history) {
  const chart = $("chart");
  chart.replaceChildren();
  const width = 640;
  const height = 150;
  const left = 52;
  const bottom = 20;
  chart.setAttribute("viewBox", "0 0 " + width + " " + height);
  const series = { read: "read_rate", written: "written_rate", failed: "failed_rate" };
  const top = Math.max(1, ...history.flatMap((p) => Object.values(series).map((key) => p[key])));
  const span = 15 * 60;
  const end = history.length ? Date.parse(history[history.length - 1].time) : Date.now();
  const x = (time) => left + ((Date.parse(time) - end) / 1000 + span) / span * (width - left - 8);
  const y = (value) => height - bottom - (value / top) * (height - bottom - 10);
  chart.append(svg("line", { x1: left, y1: height - bottom, x2: width - 8, y2: height - bottom, class: "axis" }));
  chart.append(svg("line", { x1: left, y1: 10, x2: left, y2: height - bottom, class: "axis" }));
  chart.append(svg("text", { x: left - 6, y: 16, class: "tick", "text-anchor": "end" }, number(top)));
  chart.append(svg("text", { x: left - 6, y: height - bottom, class: "tick", "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: left, y: height - 4, class: "tick" }, "15 min ago"));
  chart.append(svg("text", { x: width - 8, y: height - 4, class: "tick", "text-anchor": "end" }, "now"));
  for (const [name, key] of Object.entries(series)) {
    if (history.length < 2) continue;
    const points = history.map((p) => x(p.time).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" ");
    chart.append(svg("polyline", { points, class: "line " + name }));
  }
  if (history.length < 2) {
    chart.append(svg("text", { x: width / 2, y: height / 2, class: "tick", "text-anchor": "middle" }, "a point every 5 s: the chart fills as the flow runs"));
  }
}

// ---------------------------------------------------------------- the tap

// Reads a Server-Sent Events stream from fetch (EventSource cannot send the
// token), calling onEvent(name, data) for each event, until aborted.
async function stream(path, onEvent, controller) {
  const response = await api(path, { signal: controller.signal, headers: { Accept: "text/event-stream" } });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

function select(point) {
  state.selected = point;
  for (const node of document.querySelectorAll(".node")) {
    node.classList.toggle("selected", node.getAttribute("data-point") === point);
  }
  showTab("messages");
  startTap(point);
}

function startTap(point) {
  if (state.tap) state.tap.abort();
  const controller = new AbortController();
  state.tap = controller;
  state.held = [];
  state.paused = false;
  $("tap-pause").disabled = false;
  $("tap-pause").textContent = "Pause";
  $("tap-list").replaceChildren();
  setText("tap-point", pointLabel(point));
  setText("tap-status", "Watching " + pointLabel(point) + ": waiting for messages…");
  stream("/api/v1/tap?at=" + encodeURIComponent(point) + "&rate=20", (name, data) => {
    if (name === "dropped") {
      setText("tap-status", "Watching " + pointLabel(point) + " (" + JSON.parse(data).dropped + " samples skipped: this page read too slowly)");
      return;
    }
    if (name !== "sample") return;
    const sample = JSON.parse(data);
    if (point === "source") collect(sample);
    if (state.paused) {
      state.held.push(sample);
      if (state.held.length > MAX_SHOWN) state.held.shift();
      $("tap-pause").textContent = "Resume (" + state.held.length + " new)";
    } else {
      showSample(sample);
    }
  }, controller).catch((error) => {
    if (error.name !== "AbortError") setText("tap-status", "The tap stopped: " + error.message);
  });
}

function describeSample(sample) {
  const parts = ["#" + sample.seq, sample.time.replace("T", " ").replace("Z", "")];
  if (sample.step !== undefined) parts.push("from step " + sample.step);
  if (sample.cut) parts.push("cut at the size limit (" + sample.bytes + " bytes)");
  return parts.join(" · ");
}

function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function sampleItem(sample) {
  const item = el("li", { class: "message" });
  item.append(el("div", { class: "meta" }, describeSample(sample)));
  if (sample.error) {
    item.classList.add("failed");
    item.append(el("div", { class: "error" }, (sample.error.type || "error") + ": " + (sample.error.message || "")));
  }
  const metadata = Object.entries(sample.metadata || {});
  if (metadata.length) {
    item.append(el("div", { class: "metadata" }, metadata.map(([k, v]) => k + "=" + v).join("  ")));
  }
  item.append(el("pre", {}, pretty(sample.payload)));
  return item;
}

function showSample(sample) {
  const list = $("tap-list");
  const item = sampleItem(sample);
  list.prepend(item);
  while (list.children.length > MAX_SHOWN) list.lastChild.remove();
  applySearch(item);
  setText("tap-status", "Watching " + pointLabel(state.selected) + ": " + list.children.length + " shown, newest first");
}

function applySearch(item) {
  const wanted = $("tap-search").value.trim().toLowerCase();
  item.hidden = wanted !== "" && !item.textContent.toLowerCase().includes(wanted);
}

// ---------------------------------------------------------------- failures

async function pollFailures() {
  try {
    const response = await api("/api/v1/failures");
    const body = await response.json();
    setText("failure-count", body.total);
    if ($("panel-failures").hidden) return;
    const list = $("failure-list");
    list.replaceChildren();
    if (!body.failures.length) list.append(el("li", { class: "empty" }, "No failure so far."));
    for (const failure of body.failures) {
      const item = el("li", { class: "message failed" });
      const where = [failure.type, failure.stage];
      if (failure.step !== undefined) where.push("step " + failure.step);
      if (failure.position) where.push("at " + failure.position);
      item.append(el("div", { class: "meta" }, "#" + failure.seq + " · " + failure.time.replace("T", " ").replace("Z", "") + " · " + where.join(" · ")));
      item.append(el("div", { class: "error" }, failure.message));
      if (failure.original !== null) item.append(el("pre", {}, pretty(failure.original)));
      list.append(item);
    }
  } catch (_) { /* shown by pollFigures */ }
}

// ---------------------------------------------------------------- playground

function collect(sample) {
  if (sample.cut) return;
  state.collected.push({ payload: sample.payload, metadata: sample.metadata || {} });
  if (state.collected.length > PLAY_SAMPLES) state.collected.shift();
  setText("play-samples", state.collected.length + " messages collected from the source");
}

function startCollecting() {
  if (state.collector || state.selected === "source") return;
  const controller = new AbortController();
  state.collector = controller;
  stream("/api/v1/tap?at=source&rate=5", (name, data) => {
    if (name === "sample") collect(JSON.parse(data));
  }, controller).catch((error) => {
    state.collector = null;
    if (error.name !== "AbortError") setText("play-status", "Cannot collect messages: " + error.message);
  });
}

function scriptOf(step) {
  for (const language of ["python", "javascript"]) {
    if (step && step[language] && typeof step[language].code === "string") return language;
  }
  return null;
}

function fillEditor() {
  const index = Number($("play-step").value);
  const step = state.flow.transformations[index];
  const edited = state.edits[index];
  const language = scriptOf(step);
  const label = document.querySelector("label[for=play-edit]");
  if (language) {
    label.textContent = "The step's " + language + " code";
    $("play-edit").value = edited !== undefined ? edited : step[language].code;
  } else {
    label.textContent = "The step, as in spec.transformations (JSON)";
    $("play-edit").value = edited !== undefined ? edited : JSON.stringify(step, null, 2);
  }
}

function editedTransformations() {
  const index = Number($("play-step").value);
  const list = JSON.parse(JSON.stringify(state.flow.transformations));
  const text = $("play-edit").value;
  state.edits[index] = text;
  const language = scriptOf(list[index]);
  if (language) list[index][language].code = text;
  else list[index] = JSON.parse(text);
  return list;
}

async function dryRun(messages, transformations) {
  const body = { messages };
  if (transformations) body.transformations = transformations;
  const response = await api("/api/v1/dry-run", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return (await response.json()).results;
}

function outcomeText(result) {
  if (result.error) return "failed at step " + result.error.step + " (" + result.error.type + "): " + result.error.message;
  if (!result.outputs.length) return "(dropped: no output)";
  return result.outputs.map((o) => (o.route !== undefined ? "→ route " + o.route + "\n" : "") + pretty(o.payload)).join("\n");
}

function diffColumn(title, text, other, mark) {
  const others = new Set(other.split("\n"));
  const pre = el("pre", {});
  for (const line of text.split("\n")) {
    pre.append(el("span", { class: others.has(line) ? "same" : mark }, line + "\n"));
  }
  return el("div", { class: "column" }, el("h3", {}, title), pre);
}

// The lines only one side has, first: what a reader looks for.
function changeSummary(before, after) {
  const old = new Set(before.split("\n"));
  const now = new Set(after.split("\n"));
  const summary = el("pre", { class: "summary" });
  const lines = [
    ...after.split("\n").filter((l) => !old.has(l)).map((l) => ["added", "+ " + l.trim()]),
    ...before.split("\n").filter((l) => !now.has(l)).map((l) => ["removed", "- " + l.trim()]),
  ];
  for (const [mark, text] of lines.slice(0, 6)) summary.append(el("span", { class: mark }, text + "\n"));
  if (lines.length > 6) summary.append(el("span", {}, "… " + (lines.length - 6) + " more lines differ\n"));
  return summary;
}

async function runPlayground() {
  let transformations;
  try {
    transformations = editedTransformations();
  } catch (error) {
    setText("play-status", "The step is not valid JSON: " + error.message);
    return;
  }
  if (!state.collected.length) {
    setText("play-status", "No message collected yet: wait for the source to read a few.");
    return;
  }
  setText("play-status", "Running…");
  const messages = state.collected.slice();
  try {
    const [now, edited] = await Promise.all([dryRun(messages), dryRun(messages, transformations)]);
    const list = $("play-results");
    list.replaceChildren();
    let changed = 0;
    now.forEach((result, i) => {
      const before = outcomeText(result);
      const after = outcomeText(edited[i]);
      if (before !== after) changed++;
      const item = el("li", { class: "result" + (before !== after ? " changed" : "") });
      item.append(el("div", { class: "meta" }, "message " + (i + 1) + (before !== after ? " · changed" : " · same")));
      if (before !== after) item.append(changeSummary(before, after));
      item.append(el("div", { class: "columns" }, diffColumn("now", before, after, "removed"), diffColumn("edited", after, before, "added")));
      list.append(item);
    });
    setText("play-status", changed + " of " + now.length + " messages come out differently");
  } catch (error) {
    setText("play-status", "The edited chain cannot run: " + error.message);
  }
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  for (const tab of ["messages", "failures", "playground"]) {
    const on = tab === name;
    $("tab-" + tab).setAttribute("aria-selected", String(on));
    $("tab-" + tab).tabIndex = on ? 0 : -1;
    $("panel-" + tab).hidden = !on;
  }
  if (name === "failures") pollFailures();
  if (name === "playground") startCollecting();
}

function wire() {
  const tabs = ["messages", "failures", "playground"];
  tabs.forEach((name, i) => {
    const tab = $("tab-" + name);
    tab.addEventListener("click", () => showTab(name));
    tab.addEventListener("keydown", (event) => {
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      showTab(next);
      $("tab-" + next).focus();
    });
  });
  $("tap-pause").addEventListener("click", () => {
    state.paused = !state.paused;
    if (!state.paused) {
      state.held.forEach(showSample);
      state.held = [];
    }
    $("tap-pause").textContent = state.paused ? "Resume" : "Pause";
  });
  $("tap-search").addEventListener("input", () => {
    for (const item of $("tap-list").children) applySearch(item);
  });
  $("play-step").addEventListener("change", fillEditor);
  $("play-run").addEventListener("click", runPlayground);
  $("play-reset").addEventListener("click", () => {
    delete state.edits[Number($("play-step").value)];
    fillEditor();
  });
}

async function start() {
  state.token = readToken();
  wire();
  if (!state.token) {
    notice("No token: open the address the processor printed (it ends with #token=…).");
    $("notice").dataset.sticky = "1";
    return;
  }
  let flow;
  try {
    flow = await (await api("/api/v1/flow")).json();
  } catch (error) {
    notice("Cannot read the flow: " + error.message);
    $("notice").dataset.sticky = "1";
    return;
  }
  state.flow = flow;
  document.title = flow.name + " · dataflow";
  setText("flow-name", flow.namespace + "/" + flow.name);
  state.nodes = layout(flow);
  drawGraph();
  const select = $("play-step");
  (flow.transformations || []).forEach((step, i) => {
    const type = Object.keys(step).find((k) => k !== "type" && k !== "when") || step.type;
    select.append(el("option", { value: String(i) }, i + " · " + (step.type || type)));
  });
  if (!flow.payloads) {
    for (const id of ["panel-messages", "panel-playground"]) {
      $(id).prepend(el("p", { class: "closed" }, "This flow does not show its messages (spec.observability.tap is false). Counts and failures without payloads are still shown."));
    }
    $("play-run").disabled = true;
  }
  if (flow.transformations && flow.transformations.length) fillEditor();
  else {
    $("play-run").disabled = true;
    setText("play-status", "This flow has no transformation to edit.");
  }
  await pollFigures();
  pollHistory();
  pollFailures();
  setInterval(pollFigures, 2000);
  setInterval(pollHistory, 10000);
  setInterval(pollFailures, 5000);
}

document.addEventListener("DOMContentLoaded", start);
