// The Switchboard dashboard. It reads the management API's listing and the
// dashboard's own read-only endpoints, and drives the management API's POST
// and DELETE calls from its forms, all under /_/api/ (the gateway hands the
// management calls to the management API), so that a signed-in page's
// session cookie goes with them. Every request goes through api(), which
// also carries the access token when this tab has one.
'use strict';

// The gateway's root is the parent of this page (/_/), so the page keeps
// working when a proxy serves the gateway under a path prefix.
const ROOT = new URL('../', location.href);
const TOKEN_KEY = 'switchboard.token';
const POLL_MS = 1000;
const MAX_TAIL_ROWS = 200;
const SPARK_POINTS = 60;

const $ = (sel) => document.querySelector(sel);

// ---------------------------------------------------------------------------
// Requests and the access token

function resolve(path) {
  return new URL(path.replace(/^\//, ''), ROOT);
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled: the token lives until the page closes.
  }
  memoryToken = token;
}

let memoryToken = '';
const currentToken = () => storedToken() || memoryToken;

let tokenPrompt = null; // the open prompt, shared by concurrent requests
let signedIn = false; // the page runs on a session cookie (see checkSession)
let promptDismissed = false; // the user cancelled: ask again only on request

// api fetches path (relative to the gateway root) and returns the Response.
// It adds "Authorization: Bearer <token>" when a token is stored; on 401 or
// 403 it asks for a token and retries, unless the user dismissed the prompt.
async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers);
    const token = currentToken();
    if (token) headers.set('Authorization', 'Bearer ' + token);
    const res = await fetch(resolve(path), { cache: 'no-store', ...options, headers });
    if (signedIn && (res.status === 401 || res.status === 403)) {
      // The session ended (it expired, or signed out in another tab):
      // loading the page again shows the sign-in page.
      location.reload();
      return res;
    }
    if ((res.status !== 401 && res.status !== 403) || promptDismissed) return res;
    const reason = res.status === 401 || !token
      ? 'This gateway needs an access token.'
      : 'The gateway refused this token (403). Enter another one.';
    if ((await askToken(reason)) === null) return res;
  }
}

// askToken shows the token prompt and resolves with the new token, or with
// null when the user cancels.
function askToken(reason) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = $('#token-dialog');
  const input = $('#token-input');
  $('#token-reason').textContent = reason;
  input.value = '';
  tokenPrompt = new Promise((done) => {
    dialog.addEventListener('close', () => {
      tokenPrompt = null;
      if (dialog.returnValue !== 'ok') {
        promptDismissed = true;
        done(null);
        return;
      }
      promptDismissed = false;
      storeToken(input.value.trim());
      openTail(); // the stream carries the token in its URL
      done(input.value.trim());
    }, { once: true });
  });
  dialog.returnValue = '';
  dialog.showModal();
  input.focus();
  return tokenPrompt;
}

// describe turns an error response into "status type" and a message.
async function describe(res) {
  const text = await res.text().catch(() => '');
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: shown as text below
  }
  const type = res.headers.get('x-amzn-ErrorType') || '';
  const message = body && typeof body.message === 'string' ? body.message : (body ? '' : text.trim());
  return { title: `${res.status} ${type || res.statusText}`.trim(), message, body };
}

class HTTPError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function getJSON(path) {
  const res = await api(path);
  if (!res.ok) {
    const d = await describe(res);
    throw new HTTPError(res.status, d.message ? `${d.title}: ${d.message}` : d.title);
  }
  return res.json();
}

// ---------------------------------------------------------------------------
// Small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

function clock(date, millis = false) {
  const s = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return millis ? `${s}.${pad(date.getMilliseconds(), 3)}` : s;
}

function age(date) {
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function rate(n) {
  if (n >= 100) return Math.round(n).toLocaleString();
  return n.toFixed(1);
}

// labelCells copies the table's column headings onto the row's cells, for
// narrow screens, which show each row as a card of labelled values.
function labelCells(tr, tableID) {
  const heads = [...document.querySelectorAll(`#${tableID} thead th`)].map((th) => th.textContent.trim());
  [...tr.cells].forEach((td, i) => {
    if (heads[i] && td.colSpan === 1) td.dataset.label = heads[i];
  });
  return tr;
}

function setStatus(node, state, text) {
  node.dataset.state = state;
  node.textContent = text;
}

// ---------------------------------------------------------------------------
// Health: the state of the last polls

const health = { connections: true, stats: true, cluster: true, rates: true, consumers: true, error: '' };

function reportHealth(part, err) {
  health[part] = !err;
  if (err) health.error = err.message;
  const node = $('#health');
  if (health.connections && health.stats && health.cluster && health.rates && health.consumers) {
    setStatus(node, 'open', 'live');
    node.title = '';
  } else if (err && (err.status === 401 || err.status === 403)) {
    setStatus(node, 'closed', 'unauthorized');
    node.title = health.error;
  } else {
    setStatus(node, 'closed', 'offline');
    node.title = health.error;
  }
}

async function every(ms, part, fn) {
  for (;;) {
    try {
      await fn();
      reportHealth(part, null);
    } catch (err) {
      reportHealth(part, err);
    }
    await new Promise((r) => setTimeout(r, ms));
  }
}

// ---------------------------------------------------------------------------
// Connections

const connRows = new Map(); // connection ID -> <tr>

function connectionRow(id) {
  const idCell = el('td', { class: 'mono id-cell' }, el('span', { class: 'conn-id', textContent: id }));
  const message = el('button', { type: 'button', class: 'ghost small', textContent: 'Message', title: 'Send a message to this connection' });
  const drop = el('button', { type: 'button', class: 'ghost small danger-text', textContent: 'Disconnect', title: 'Prepare to disconnect this connection' });
  message.addEventListener('click', () => {
    $('#send-id').value = id;
    $('#send-form').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    $('#send-message').focus();
  });
  drop.addEventListener('click', () => {
    $('#disconnect-id').value = id;
    $('#disconnect-form').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    $('#disconnect-submit').focus();
  });
  return labelCells(el('tr', { dataset: { connectionId: id } },
    idCell,
    el('td', { class: 'mono node-col node' }),
    el('td', { class: 'principal' }),
    el('td', { class: 'user' }),
    el('td', { class: 'connected' }),
    el('td', { class: 'mono source-ip' }),
    el('td', { class: 'topics' }),
    el('td', { class: 'actions-col' }, el('div', { class: 'row-actions' }, message, drop))), 'connections');
}

function updateConnectionRow(tr, c) {
  const [, node, principal, user, connected, sourceIP, topics] = tr.cells;
  node.textContent = nodeLabel(c.node);
  node.title = c.node || '';
  node.dataset.node = c.node || '';
  principal.textContent = c.principal || '—';
  principal.classList.toggle('muted', !c.principal);
  user.textContent = c.userId || '—';
  user.classList.toggle('muted', !c.userId);
  const at = new Date(c.connectedAt);
  if (!Number.isNaN(at.getTime())) {
    connected.textContent = `${clock(at)} · ${age(at)}`;
    connected.title = c.connectedAt;
  }
  sourceIP.textContent = (c.identity && c.identity.sourceIp) || '—';
  sourceIP.title = (c.identity && c.identity.userAgent) || '';
  const names = c.topics || [];
  const key = names.join('\n');
  if (topics.dataset.key !== key) {
    topics.dataset.key = key;
    topics.replaceChildren(...(names.length
      ? names.map((t) => el('span', { class: 'chip', textContent: t }))
      : [el('span', { class: 'muted', textContent: '—' })]));
  }
  tr.dataset.search = [c.connectionId, node.textContent, c.node, c.principal, c.userId, sourceIP.textContent, ...names]
    .join(' ').toLowerCase();
}

function renderConnections(items, more) {
  lastListing = items;
  const body = $('#connections-body');
  const seen = new Set();
  let prev = null;
  for (const c of items) {
    seen.add(c.connectionId);
    let tr = connRows.get(c.connectionId);
    if (!tr) {
      tr = connectionRow(c.connectionId);
      connRows.set(c.connectionId, tr);
    }
    updateConnectionRow(tr, c);
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const [id, tr] of connRows) {
    if (!seen.has(id)) {
      tr.remove();
      connRows.delete(id);
    }
  }
  applyConnectionFilter();
  $('#conn-count').textContent = more ? `${items.length.toLocaleString()}+` : items.length.toLocaleString();
  $('#conn-note').textContent = more ? `first ${items.length.toLocaleString()} shown` : '';
  $('#connections-empty').hidden = items.length > 0;
}

// ---------------------------------------------------------------------------
// Rates: the gateway's last minutes, from /_/api/rates, as lines

const CHART_W = 600;
const CHART_H = 120;
const CHART_TOP = 10; // the top gridline: the scale's maximum

// scaleMax rounds v up to 1, 2 or 5 times a power of ten, at least 1.
function scaleMax(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawLine sets the polyline's points from samples' field over the window
// that ends at end (ms); it records the series' peak and last value.
function drawLine(line, samples, field, start, window, max) {
  const pts = samples.map((s) => {
    const x = ((new Date(s.t).getTime() - start) / window) * CHART_W;
    const y = CHART_H - ((s[field] || 0) / max) * (CHART_H - CHART_TOP);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  line.setAttribute('points', pts.join(' '));
  line.dataset.peak = String(Math.max(0, ...samples.map((s) => s[field] || 0)));
  line.dataset.last = String(samples.length ? samples[samples.length - 1][field] || 0 : 0);
}

function renderRates(body) {
  const samples = body.samples || [];
  const interval = body.intervalMs || 1000;
  const end = samples.length ? new Date(samples[samples.length - 1].t).getTime() : Date.now();
  // The window is what the gateway keeps, at least a minute, so that the
  // lines grow from the right as samples arrive.
  const window = Math.max(60000, samples.length * interval);
  const start = end - window;
  const msgMax = scaleMax(Math.max(...samples.map((s) => Math.max(s.in, s.out, s.errors)), 0));
  const connMax = scaleMax(Math.max(...samples.map((s) => s.connections), 0));
  drawLine($('#line-in'), samples, 'in', start, window, msgMax);
  drawLine($('#line-out'), samples, 'out', start, window, msgMax);
  drawLine($('#line-errors'), samples, 'errors', start, window, msgMax);
  drawLine($('#line-connections'), samples, 'connections', start, window, connMax);
  $('#chart-messages-max').textContent = `(top: ${msgMax.toLocaleString()}/s)`;
  $('#chart-connections-max').textContent = `(top: ${connMax.toLocaleString()})`;
  const last = samples[samples.length - 1] || { in: 0, out: 0, errors: 0, connections: 0 };
  $('#legend-in').textContent = rate(last.in);
  $('#legend-out').textContent = rate(last.out);
  $('#legend-errors').textContent = rate(last.errors);
  $('#legend-connections').textContent = last.connections.toLocaleString();
  if (samples.length) {
    $('#rate-in').textContent = rate(last.in);
    $('#rate-out').textContent = rate(last.out);
  }
  const recent = samples.slice(-SPARK_POINTS);
  drawSpark($('#spark-in'), recent.map((x) => x.in));
  drawSpark($('#spark-out'), recent.map((x) => x.out));
  const minutes = Math.round(window / 60000);
  $('#rates-window').textContent = `last ${minutes} minute${minutes === 1 ? '' : 's'}`;
  $('#charts').dataset.state = 'ready';
}

async function refreshRates() {
  renderRates(await getJSON('/_/api/rates'));
}

function applyConnectionFilter() {
  const q = $('#conn-filter').value.trim().toLowerCase();
  for (const tr of connRows.values()) tr.hidden = q !== '' && !tr.dataset.search.includes(q);
}

async function refreshConnections() {
  const body = await getJSON('/_/api/connections?limit=1000');
  renderConnections(body.items || [], Boolean(body.nextCursor));
  $('#connections-loading').hidden = true; // only now is "no connections" known
  await refreshUsers();
}

// refreshUsers shows how many users are online and the first of them.
async function refreshUsers() {
  const body = await getJSON('/_/api/users?limit=10');
  const items = body.items || [];
  $('#user-count').textContent = (body.count || 0).toLocaleString();
  $('#user-list').textContent = items.length
    ? items.join(' · ') + (body.nextCursor ? ' …' : '')
    : '\u00a0';
}

// ---------------------------------------------------------------------------
// Cluster: the nodes whose lease is current, and this node's engine

let clusterNodes = new Map(); // node ID -> node, from the last poll
let lastListing = []; // the connections of the last listing, for the counts per node

// nodeLabel names a node by its name when the cluster poll knows it.
function nodeLabel(id) {
  if (!id) return '—';
  const n = clusterNodes.get(id);
  return n && n.name ? n.name : id;
}

function renderCluster(c) {
  const clustered = Boolean(c.engine);
  document.body.classList.toggle('clustered', clustered);
  $('#cluster-panel').hidden = !clustered;
  if (!clustered) return;
  clusterNodes = new Map((c.nodes || []).map((n) => [n.id, n]));
  $('#cluster-engine').textContent = c.engine;
  const state = $('#cluster-state');
  if (c.engineError) {
    setStatus(state, 'closed', 'engine unreachable');
    state.title = c.engineError;
  } else {
    setStatus(state, 'open', 'engine ok');
    state.title = '';
  }
  const counts = new Map();
  for (const conn of lastListing) counts.set(conn.node, (counts.get(conn.node) || 0) + 1);
  $('#cluster-body').replaceChildren(...(c.nodes || []).map((n) => {
    const started = new Date(n.startedAt);
    const seen = new Date(n.lastSeen);
    const name = el('td', {},
      el('div', { textContent: n.name || n.id }),
      el('div', { class: 'mono muted small-text', textContent: n.id }));
    if (n.id === c.node) name.firstChild.append(' ', el('span', { class: 'badge', textContent: 'this node' }));
    return labelCells(el('tr', { dataset: { nodeId: n.id, self: String(n.id === c.node) } },
      name,
      el('td', { class: 'started nowrap', textContent: Number.isNaN(started.getTime()) ? '—' : age(started), title: `started ${n.startedAt || '?'}` }),
      el('td', { class: 'last-seen nowrap', textContent: Number.isNaN(seen.getTime()) ? '—' : `${age(seen)} ago`, title: `lease renewed ${n.lastSeen || '?'}` }),
      el('td', { class: 'num count', textContent: (counts.get(n.id) || 0).toLocaleString() })), 'cluster');
  }));
  const err = $('#cluster-error');
  err.textContent = c.nodesError ? `Nodes could not be listed: ${c.nodesError}` : '';
  err.hidden = !c.nodesError;
  // Connections rows show node names once the nodes are known.
  for (const tr of connRows.values()) {
    const cell = tr.querySelector('td.node');
    if (cell && cell.dataset.node) cell.textContent = nodeLabel(cell.dataset.node);
  }
}

async function refreshCluster() {
  renderCluster(await getJSON('/_/api/cluster'));
}

// ---------------------------------------------------------------------------
// Consumers: events read from a bus into topics

let lastConsumers = { at: 0, byName: new Map() }; // the previous poll, for the rates

function renderConsumers(list) {
  $('#consumers-panel').hidden = list.length === 0;
  const now = Date.now();
  const prev = lastConsumers;
  $('#consumers-body').replaceChildren(...list.map((c) => {
    const before = prev.byName.get(c.name);
    const secs = (now - prev.at) / 1000;
    const rate = before && secs > 0 ? Math.max(0, (c.consumed - before.consumed) / secs) : 0;
    const name = el('td', {},
      el('div', { textContent: c.name }),
      el('div', { class: 'mono muted small-text', textContent: `${c.kind} ${c.source}` }));
    return labelCells(el('tr', { dataset: { consumer: c.name } },
      name,
      el('td', { class: 'num lag', textContent: c.lag < 0 ? '—' : c.lag.toLocaleString() }),
      el('td', { class: 'num rate', textContent: rate.toFixed(1) }),
      el('td', { class: 'num retries', textContent: c.retries.toLocaleString() }),
      el('td', { class: 'num dead', textContent: c.deadLetters.toLocaleString() })), 'consumers');
  }));
  lastConsumers = { at: now, byName: new Map(list.map((c) => [c.name, c])) };
}

async function refreshConsumers() {
  renderConsumers((await getJSON('/_/api/consumers')).consumers || []);
}

// ---------------------------------------------------------------------------
// Queues: message counts; a dead-letter queue (one with sources) can be
// redriven to the queues its messages came from.

function renderQueues(queues) {
  $('#queues-panel').hidden = queues.length === 0;
  $('#queues-body').replaceChildren(...queues.map((q) => {
    const name = el('td', {}, el('div', { class: 'mono', textContent: q.name }));
    if (q.deadLetter) name.append(el('div', { class: 'muted small-text', textContent: `dead letters → ${q.deadLetter} after ${q.maxReceiveCount}` }));
    const action = el('td', {});
    if (q.sources && q.sources.length) {
      name.append(el('div', { class: 'muted small-text', textContent: `dead-letter queue of ${q.sources.join(', ')}` }));
      const button = el('button', { type: 'button', class: 'ghost redrive', textContent: 'Redrive', disabled: q.visible + q.inFlight + q.delayed === 0 });
      button.addEventListener('click', () => redrive(q.name, button));
      action.append(button);
    }
    return labelCells(el('tr', { dataset: { queue: q.name } }, name,
      el('td', { class: 'num visible', textContent: q.visible.toLocaleString() }),
      el('td', { class: 'num in-flight', textContent: q.inFlight.toLocaleString() }),
      el('td', { class: 'num delayed', textContent: q.delayed.toLocaleString() }),
      action), 'queues');
  }));
}

async function redrive(name, button) {
  button.disabled = true;
  const out = $('#queues-result');
  const res = await api(`/_/api/queues/${encodeURIComponent(name)}/redrive`, { method: 'POST' });
  if (res.ok) {
    const body = await res.json();
    out.textContent = `${body.moved} moved from ${name}`;
  } else {
    const d = await describe(res);
    out.textContent = d.message ? `${d.title}: ${d.message}` : d.title;
  }
  refreshQueues().catch(() => {}); // the next poll reports a failure
}

async function refreshQueues() {
  renderQueues((await getJSON('/_/api/queues')).queues || []);
}

// ---------------------------------------------------------------------------
// Totals and rates

function drawSpark(svg, values) {
  const max = Math.max(1, ...values);
  const offset = SPARK_POINTS - values.length;
  const points = values.map((v, i) => `${offset + i},${(20 - (v / max) * 18 - 1).toFixed(2)}`);
  svg.querySelector('polyline').setAttribute('points', points.join(' '));
}

// The cards' rates and sparklines are the last samples of /_/api/rates
// (see renderRates); the totals come from /_/api/stats.
async function refreshStats() {
  const s = await getJSON('/_/api/stats');
  $('#conn-totals').textContent = `${s.connects.toLocaleString()} connects · ${s.disconnects.toLocaleString()} disconnects`;
  $('#msg-totals').textContent = `${s.messagesIn.toLocaleString()} · ${s.messagesOut.toLocaleString()}`;
}

// ---------------------------------------------------------------------------
// Routes

function showEndpoint(stage) {
  const ws = new URL(ROOT);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  $('#endpoint').textContent = ws.href + (stage ? `  ·  ${ws.href}${stage}` : '');
}

async function loadRoutes() {
  const body = await getJSON('/_/api/routes');
  const stage = body.stage || '';
  $('#stage').textContent = `stage ${stage}`;
  $('#stage').hidden = !stage;
  showEndpoint(stage);
  const routes = body.routes || [];
  $('#routes-body').replaceChildren(...routes.map((r) => labelCells(el('tr', { dataset: { routeKey: r.routeKey } },
    el('td', { class: 'mono', textContent: r.routeKey }),
    el('td', {}, el('span', { class: 'badge', textContent: r.integration })),
    el('td', { class: r.target ? 'mono target' : 'muted', textContent: r.target || '—', title: r.target || '' }),
    el('td', { class: r.twoWay ? 'yes' : 'muted', textContent: r.twoWay ? 'yes' : 'no' })), 'routes')));
  $('#routes-empty').hidden = routes.length > 0;
  const hasDefault = routes.some((r) => r.routeKey === '$default');
  $('#routes-note').textContent = hasDefault ? '' : 'no $default: unmatched messages get Forbidden';
}

async function keepLoadingRoutes() {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 30000)) {
    try {
      await loadRoutes();
      return;
    } catch (err) {
      $('#routes-note').textContent = `could not load: ${err.message}`;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

// ---------------------------------------------------------------------------
// Live tail

let tail = null; // the current EventSource
let tailRetries = 0;
let tailPaused = false;
let tailPending = []; // records that arrived while paused, oldest first

function openTail() {
  if (tail) tail.close();
  const url = resolve('/_/api/tail');
  const token = currentToken();
  if (token) url.searchParams.set('access_token', token);
  const es = new EventSource(url);
  tail = es;
  const state = $('#tail-state');
  setStatus(state, 'connecting', 'connecting');
  es.addEventListener('open', () => {
    tailRetries = 0;
    setStatus(state, 'open', 'live');
    // The stream starts over with the records the gateway kept.
    $('#tail-body').replaceChildren();
    tailPending = [];
    updateTailEmpty();
  });
  es.addEventListener('message', (ev) => {
    let rec;
    try {
      rec = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (tailPaused) {
      tailPending.push(rec);
      if (tailPending.length > MAX_TAIL_ROWS) tailPending.shift();
      updatePauseButton();
    } else {
      addTailRow(recordRow(rec));
    }
  });
  es.addEventListener('dropped', (ev) => {
    let n = 0;
    try {
      n = JSON.parse(ev.data).dropped;
    } catch {
      return;
    }
    const row = el('tr', { class: 'dropped' },
      el('td', { colSpan: 8, textContent: `${n} invocation${n === 1 ? '' : 's'} not shown: the dashboard fell behind` }));
    row.dataset.search = '';
    addTailRow(row);
  });
  es.addEventListener('error', () => {
    if (es !== tail) return;
    if (es.readyState === EventSource.CLOSED) {
      // Refused (an HTTP error, say 401): the browser gives up, we do not.
      const delay = Math.min(30000, 1000 * 2 ** tailRetries++);
      setStatus(state, 'closed', `offline · retry in ${Math.round(delay / 1000)}s`);
      setTimeout(() => {
        if (es === tail) openTail();
      }, delay);
    } else {
      setStatus(state, 'connecting', 'reconnecting');
    }
  });
}

function recordRow(rec) {
  const at = new Date(rec.time);
  const failed = Boolean(rec.error) || !(rec.status >= 200 && rec.status < 300);
  const route = el('td', { class: 'mono' }, el('span', { textContent: rec.unmatched ? 'no route' : (rec.routeKey || '—') }));
  if (rec.error) route.append(el('div', { class: 'error-text', textContent: rec.unmatched ? `${rec.error}: the message matched no route` : rec.error }));
  const rowClass = rec.unmatched ? 'failed unmatched' : (failed ? 'failed' : '');
  const row = el('tr', { class: rowClass, dataset: { requestId: rec.requestId || '', routeKey: rec.routeKey || '', unmatched: String(Boolean(rec.unmatched)) } },
    el('td', { class: 'mono nowrap', textContent: Number.isNaN(at.getTime()) ? '' : clock(at, true), title: rec.time || '' }),
    route,
    el('td', { class: 'muted small-text', textContent: rec.eventType || '' }),
    el('td', { class: 'mono', textContent: rec.connectionId || '' }),
    el('td', {}, rec.integration ? el('span', { class: 'badge', textContent: rec.integration }) : ''),
    el('td', { class: 'num' }, el('span', { class: failed ? 'code err' : 'code ok', textContent: rec.error && !rec.unmatched ? 'error' : String(rec.status) })),
    el('td', { class: 'num mono', textContent: `${(rec.latencyNs / 1e6).toFixed(rec.latencyNs < 1e7 ? 2 : 0)} ms` }),
    el('td', { class: 'num mono', textContent: (rec.bytes || 0).toLocaleString() }));
  row.dataset.search = [rec.routeKey, rec.unmatched ? 'unmatched no route' : '', rec.eventType, rec.connectionId, rec.integration, rec.error, rec.requestId]
    .join(' ').toLowerCase();
  return labelCells(row, 'tail');
}

function addTailRow(row) {
  const body = $('#tail-body');
  const q = $('#tail-filter').value.trim().toLowerCase();
  row.hidden = q !== '' && !row.dataset.search.includes(q);
  body.prepend(row);
  while (body.rows.length > MAX_TAIL_ROWS) body.lastElementChild.remove();
  updateTailEmpty();
}

function updateTailEmpty() {
  $('#tail-empty').hidden = $('#tail-body').rows.length > 0;
}

function updatePauseButton() {
  const b = $('#tail-pause');
  b.setAttribute('aria-pressed', String(tailPaused));
  b.textContent = tailPaused ? `Resume${tailPending.length ? ` (${tailPending.length} new)` : ''}` : 'Pause';
}

function setupTailControls() {
  $('#tail-pause').addEventListener('click', () => {
    tailPaused = !tailPaused;
    if (!tailPaused) {
      for (const rec of tailPending) addTailRow(recordRow(rec));
      tailPending = [];
    }
    updatePauseButton();
  });
  $('#tail-clear').addEventListener('click', () => {
    $('#tail-body').replaceChildren();
    tailPending = [];
    updatePauseButton();
    updateTailEmpty();
  });
  $('#tail-filter').addEventListener('input', () => {
    const q = $('#tail-filter').value.trim().toLowerCase();
    for (const row of $('#tail-body').rows) row.hidden = q !== '' && !row.dataset.search.includes(q);
  });
}

// ---------------------------------------------------------------------------
// Management API forms

function showResult(out, state, title, message = '') {
  out.dataset.state = state;
  out.replaceChildren(el('strong', { textContent: title }));
  if (message) out.append(el('span', { class: 'result-message', textContent: message }));
}

// bindForm runs send(fields) on submit and shows the response in the form's
// <output>: the status, and for errors x-amzn-ErrorType and the message.
function bindForm(form, send, after) {
  const out = form.querySelector('output');
  const button = form.querySelector('button[type=submit]');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const fields = Object.fromEntries(new FormData(form));
    button.disabled = true;
    showResult(out, 'pending', 'Sending…');
    try {
      const res = await send(fields);
      if (res.ok) {
        const text = await res.text();
        let title = `${res.status} ${res.statusText}`.trim();
        try {
          const body = text ? JSON.parse(text) : null;
          if (body && typeof body.recipients === 'number') {
            title += ` · ${body.recipients} recipient${body.recipients === 1 ? '' : 's'}`;
          }
        } catch {
          // a success body that is not JSON has nothing more to show
        }
        showResult(out, 'ok', title);
        if (after) after();
      } else {
        const d = await describe(res);
        showResult(out, 'err', d.title, d.message);
      }
    } catch (err) {
      showResult(out, 'err', 'Request failed', err.message);
    } finally {
      button.disabled = false;
    }
  });
}

function setupForms() {
  const post = (path, body) => api(path, { method: 'POST', body });
  // Connection IDs end in "=" and may hold "/" or "+": always encode them.
  // /_/api/x is the management API's /@x (see the hints under the forms).
  bindForm($('#send-form'), (f) => post(`/_/api/connections/${encodeURIComponent(f.id.trim())}`, f.message));
  bindForm($('#publish-form'), (f) => post(`/_/api/topics/${encodeURIComponent(f.topic.trim())}`, f.message));
  bindForm($('#broadcast-form'), (f) => post('/_/api/broadcast', f.message));
  bindForm($('#disconnect-form'),
    (f) => api(`/_/api/connections/${encodeURIComponent(f.id.trim())}`, { method: 'DELETE' }),
    () => refreshConnections().catch(() => {}));
}

// ---------------------------------------------------------------------------

// checkSession asks whether the page runs on a sign-in session; if it does,
// the page offers to sign out instead of asking for a token.
async function checkSession() {
  try {
    const res = await fetch(resolve('/_/api/session'), { cache: 'no-store' });
    if (!res.ok) return;
    signedIn = true;
    $('#logout-form').hidden = false;
    $('#token-button').hidden = true;
  } catch {
    // offline: the polls report it
  }
}

function start() {
  $('#token-cancel').addEventListener('click', () => $('#token-dialog').close('cancel'));
  $('#token-button').addEventListener('click', () => {
    promptDismissed = false;
    askToken(currentToken() ? 'Replace the token this tab uses.' : 'Set the token this tab sends.');
  });
  $('#conn-filter').addEventListener('input', applyConnectionFilter);
  setupTailControls();
  setupForms();
  showEndpoint('');
  checkSession();
  keepLoadingRoutes();
  every(POLL_MS, 'connections', refreshConnections);
  every(POLL_MS, 'stats', refreshStats);
  every(POLL_MS, 'cluster', refreshCluster);
  every(POLL_MS, 'queues', refreshQueues);
  every(POLL_MS, 'rates', refreshRates);
  every(POLL_MS, 'consumers', refreshConsumers);
  openTail();
}

start();
