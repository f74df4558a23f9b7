/**
 * The dashboard's page: one self-contained HTML document (no build step). It loads vega, vega-lite and vega-embed
 * from the dashboard server, listens to `/events` (server-sent events: `hello` with the run names, then `train`
 * with each TrainEvent and `status` when a run ends) and plots into one vega view. `window.__views.main` is that
 * view and `window.__dashboard` the data as received (tests read them back). The script avoids backticks and
 * dollar-brace so that it can live in this template literal unescaped.
 */
export function dashboardPage(): string {
  return PAGE;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>symflow training</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fafafa; }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px 6px; }
  h1 { font-size: 20px; margin: 0; font-weight: 600; }
  #connection { color: #777; font-size: 13px; }
  main { padding: 0 24px 24px; }
  table { border-collapse: collapse; background: white; border: 1px solid #e3e3e3; margin: 8px 0 14px; }
  th, td { padding: 5px 12px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; font-variant-numeric: tabular-nums; }
  th { font-weight: 600; color: #555; background: #f4f4f4; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
  td.name, th.name { text-align: left; }
  .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 8px; vertical-align: -1px; }
  .status { font-weight: 600; }
  .status.running { color: #2a8a2a; } .status.stopped { color: #c46a00; } .status.completed { color: #3366aa; } .status.error { color: #c0392b; }
  button { font: inherit; font-size: 13px; padding: 3px 12px; border: 1px solid #bbb; border-radius: 4px; background: white; cursor: pointer; }
  button:hover:not(:disabled) { background: #fdeaea; border-color: #c0392b; }
  button:disabled { color: #aaa; cursor: default; }
  .controls { display: flex; gap: 18px; align-items: center; margin-bottom: 4px; }
  #charts { background: white; border: 1px solid #e3e3e3; padding: 10px; display: inline-block; }
</style>
</head>
<body>
<header><h1 id="title">symflow training</h1><span id="connection">connecting…</span></header>
<main>
  <table id="runs">
    <thead><tr>
      <th class="name">run</th><th>status</th><th>epoch</th><th>steps</th><th>session runs</th><th>loss</th>
      <th>val loss</th><th>lr</th><th>ms / step</th><th><button id="stop-all" disabled>stop all</button></th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <div class="controls">
    <label>x axis
      <select id="x">
        <option value="step">step</option>
        <option value="runs">session runs (gradient evaluations)</option>
        <option value="time">wall-clock seconds</option>
      </select>
    </label>
  </div>
  <div id="charts"></div>
</main>
<script src="/vega.js"></script>
<script src="/vega-lite.js"></script>
<script src="/vega-embed.js"></script>
<script>
'use strict';
const PALETTE = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#9d755d', '#ff9da6', '#bab0ac'];
const X = {
  step: { field: 'step', title: 'step' },
  runs: { field: 'totalRuns', title: 'session runs (gradient evaluations)' },
  time: { field: 'seconds', title: 'wall-clock seconds' },
};

/** Everything received, as the tests and a re-render read it. */
const board = { title: '', runs: [], steps: [], epochs: [], status: {} };
window.__dashboard = board;
window.__views = {};
let view = null;
let rendering = null;
let pending = { steps: [], epochs: [] };
let perRun = {};

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
const fmt = (v, digits) => (v === undefined || v === null ? '—' : Number(v).toPrecision(digits || 4));
const colorOf = (run) => PALETTE[board.runs.indexOf(run) % PALETTE.length];

function stopRun(run) {
  const q = run === undefined ? '' : '?run=' + encodeURIComponent(run);
  fetch('/stop' + q, { method: 'POST', headers: { 'x-symflow-dashboard': '1' } });
}

function buildTable() {
  const body = document.querySelector('#runs tbody');
  body.replaceChildren();
  for (const run of board.runs) {
    const tr = el('tr', { 'data-run': run });
    const name = el('td', { class: 'name' });
    name.append(el('span', { class: 'swatch', style: 'background:' + colorOf(run) }), document.createTextNode(run));
    tr.append(name);
    for (const k of ['status', 'epoch', 'steps', 'runs', 'loss', 'val', 'lr', 'ms']) tr.append(el('td', { 'data-k': k }));
    const stop = el('button', { 'data-stop': run }, 'stop');
    stop.onclick = () => stopRun(run);
    const cell = el('td');
    cell.append(stop);
    tr.append(cell);
    body.append(tr);
  }
  document.getElementById('stop-all').onclick = () => stopRun();
}

function updateRow(run) {
  const r = perRun[run];
  const tr = document.querySelector('#runs tr[data-run="' + CSS.escape(run) + '"]');
  const set = (k, v) => { tr.querySelector('[data-k="' + k + '"]').textContent = v; };
  const status = board.status[run];
  const cell = tr.querySelector('[data-k="status"]');
  cell.textContent = status.status + (status.error ? ': ' + status.error : '');
  cell.className = 'status ' + status.status;
  set('epoch', r.epoch === undefined ? '—' : r.epoch);
  set('steps', r.steps + (r.skipped ? ' (+' + r.skipped + ' skipped)' : ''));
  set('runs', r.totalRuns);
  set('loss', fmt(r.loss));
  set('val', fmt(r.val));
  set('lr', fmt(r.lr, 3));
  set('ms', r.steps ? (r.totalMs / r.steps).toFixed(1) : '—');
  tr.querySelector('[data-stop]').disabled = status.status !== 'running';
  document.getElementById('stop-all').disabled = !board.runs.some((n) => board.status[n].status === 'running');
}

function spec(x, width) {
  const color = {
    field: 'run', type: 'nominal', title: 'run', scale: { domain: board.runs, range: PALETTE },
    legend: { orient: 'top', direction: 'horizontal', title: null, labelFontSize: 13, symbolOpacity: 1, symbolStrokeWidth: 3 },
  };
  const xEnc = { field: X[x].field, type: 'quantitative', title: X[x].title };
  const line = { type: 'line', strokeWidth: 1.6, clip: true, interpolate: 'linear' };
  const chart = (title, field, yTitle, log, extra) => Object.assign({
    title, width, height: 230,
    data: { name: 'steps' },
    transform: [{ filter: 'isValid(datum.' + field + ') && isFinite(datum.' + field + ')' + (log ? ' && datum.' + field + ' > 0' : '') }],
    mark: line,
    encoding: {
      x: xEnc,
      y: { field, type: 'quantitative', title: yTitle, scale: log ? { type: 'log', nice: false, padding: 6 } : { zero: false, padding: 6 } },
      color,
      tooltip: [{ field: 'run' }, { field: 'epoch' }, { field: 'step' }, { field, format: '.4~g' }],
    },
  }, extra || {});
  const epochChart = (title, losses) => ({
    title, width, height: 230,
    data: { name: 'epochs' },
    transform: [{ filter: 'isValid(datum.value) && isFinite(datum.value) && ' + (losses ? "indexof(datum.metric, 'loss') >= 0 && datum.value > 0" : "indexof(datum.metric, 'loss') < 0") }],
    mark: { type: 'line', strokeWidth: 2, clip: true },
    encoding: {
      x: xEnc,
      y: { field: 'value', type: 'quantitative', title: losses ? 'loss' : 'value', scale: losses ? { type: 'log', nice: false, padding: 6 } : { zero: false, padding: 6 } },
      color,
      strokeDash: { field: 'metric', type: 'nominal', title: null, legend: { orient: 'bottom', direction: 'horizontal', symbolStrokeColor: '#444', symbolStrokeWidth: 2 } },
      tooltip: [{ field: 'run' }, { field: 'epoch' }, { field: 'metric' }, { field: 'value', format: '.4~g' }],
    },
  });
  // Step times are noisy (GC, the other runs sharing the event loop): each step a faint dot, a centred mean of 21 a line.
  const stepTime = {
    title: 'Step time (dots: each step; line: mean of 21 steps; log scale)', width, height: 230,
    data: { name: 'steps' },
    transform: [
      { filter: 'isValid(datum.ms) && datum.ms > 0' },
      { window: [{ op: 'mean', field: 'ms', as: 'meanMs' }], frame: [-10, 10], groupby: ['run'], sort: [{ field: 'step' }] },
    ],
    encoding: { x: xEnc, color },
    layer: [
      { mark: { type: 'point', filled: true, size: 8, opacity: 0.3, clip: true }, encoding: { y: { field: 'ms', type: 'quantitative', title: 'milliseconds per step', scale: { type: 'log', nice: false, padding: 6 } } } },
      { mark: { type: 'line', strokeWidth: 2, clip: true }, encoding: { y: { field: 'meanMs', type: 'quantitative' }, tooltip: [{ field: 'run' }, { field: 'step' }, { field: 'ms', format: '.3~g' }, { field: 'meanMs', format: '.3~g' }] } },
    ],
  };
  return {
    config: {
      font: 'system-ui, sans-serif',
      title: { fontSize: 14, anchor: 'start', fontWeight: 600, offset: 8 },
      axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 500, gridColor: '#eee' },
      legend: { labelFontSize: 12 },
      view: { stroke: '#ddd' },
    },
    vconcat: [
      { hconcat: [
        chart('Training loss per step (log scale)', 'loss', 'mini-batch loss', true),
        chart('Learning rate / step size (log scale)', 'lr', 'lr', true),
      ] },
      { hconcat: [
        epochChart('End of epoch: mean step loss and validation loss (log scale)', true),
        epochChart('End of epoch: validation metrics', false),
      ], resolve: { scale: { strokeDash: 'independent' }, legend: { strokeDash: 'independent' } } },
      { hconcat: [stepTime] },
    ],
    resolve: { scale: { color: 'shared', strokeDash: 'independent' }, legend: { strokeDash: 'independent' } },
  };
}

/** (Re-)creates the view for the chosen x axis and fills it with everything received so far. */
async function render() {
  const x = document.getElementById('x').value;
  const width = Math.max(300, Math.floor((window.innerWidth - 48 - 20) / 2) - 110);
  const previous = view;
  view = null;
  if (previous) previous.finalize();
  const result = await vegaEmbed('#charts', spec(x, width), { actions: false, renderer: 'svg' });
  view = result.view;
  window.__views.main = view;
  pending = { steps: [], epochs: [] };
  view.change('steps', vega.changeset().insert(board.steps.map((r) => Object.assign({}, r))))
    .change('epochs', vega.changeset().insert(board.epochs.map((r) => Object.assign({}, r))));
  await view.resize().runAsync();
}

function rerender() {
  rendering = (rendering || Promise.resolve()).then(render);
}

/** Sends what arrived since the last flush to the view, a few times a second rather than per event. */
async function flush() {
  if (!view || (pending.steps.length === 0 && pending.epochs.length === 0)) return;
  const { steps, epochs } = pending;
  pending = { steps: [], epochs: [] };
  // resize(): new data can widen axis labels, and the 'pad' autosize is only recomputed when asked.
  view.change('steps', vega.changeset().insert(steps)).change('epochs', vega.changeset().insert(epochs));
  await view.resize().runAsync();
}
setInterval(flush, 150);

function onHello(hello) {
  board.title = hello.title;
  board.runs = hello.runs;
  board.steps.length = 0;
  board.epochs.length = 0;
  board.status = {};
  perRun = {};
  for (const run of board.runs) {
    board.status[run] = { status: 'running', steps: 0 };
    perRun[run] = { steps: 0, skipped: 0, totalRuns: 0, totalMs: 0 };
  }
  document.title = hello.title;
  document.getElementById('title').textContent = hello.title;
  document.getElementById('x').value = hello.x;
  buildTable();
  board.runs.forEach(updateRow);
  rerender();
}

function onTrain({ run, event: e }) {
  const r = perRun[run];
  if (e.type === 'step') {
    r.steps++;
    r.totalRuns += e.runs;
    r.totalMs += e.ms;
    r.epoch = e.epoch;
    r.loss = e.loss;
    if (e.lr !== undefined) r.lr = e.lr;
    const row = Object.assign({ run }, e, { totalRuns: r.totalRuns, seconds: r.totalMs / 1000 });
    board.steps.push(row);
    pending.steps.push(Object.assign({}, row));
  } else if (e.type === 'epoch') {
    const at = { run, epoch: e.epoch, step: r.steps, totalRuns: r.totalRuns, seconds: r.totalMs / 1000 };
    const rows = [Object.assign({ metric: 'mean step loss', value: e.loss }, at)];
    for (const k in e.val || {}) rows.push(Object.assign({ metric: 'val ' + k, value: e.val[k] }, at));
    if (e.val && e.val.loss !== undefined) r.val = e.val.loss;
    for (const row of rows) {
      board.epochs.push(row);
      pending.epochs.push(Object.assign({}, row));
    }
  } else if (e.type === 'skipped') {
    r.skipped++;
  }
  board.status[run].steps = r.steps;
  updateRow(run);
}

function onStatus(s) {
  board.status[s.run] = s;
  updateRow(s.run);
}

document.getElementById('x').onchange = rerender;
const source = new EventSource('/events');
const connection = document.getElementById('connection');
source.onopen = () => { connection.textContent = 'live'; };
source.onerror = () => { connection.textContent = 'disconnected (the dashboard server closed?)'; };
source.addEventListener('hello', (m) => onHello(JSON.parse(m.data)));
source.addEventListener('train', (m) => onTrain(JSON.parse(m.data)));
source.addEventListener('status', (m) => onStatus(JSON.parse(m.data)));
</script>
</body>
</html>
`;
