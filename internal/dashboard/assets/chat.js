// The Switchboard demo chat. It connects to the gateway's WebSocket at the
// root of this host and sends {"action":"sendMessage","data": text}; the
// zero-config sendMessage route broadcasts the text to every connection, so
// two tabs of this page talk to each other. After a drop it reconnects with
// capped exponential backoff.
'use strict';

const MAX_MESSAGES = 500;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;

const $ = (sel) => document.querySelector(sel);

// The gateway's root is the parent of this page (/_/chat).
const wsURL = (() => {
  const u = new URL('../', location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.search = '';
  u.hash = '';
  return u.href;
})();

const name = (new URLSearchParams(location.search).get('name') || '').trim().slice(0, 32);

let ws = null;
let attempt = 0; // failed connections since the last open
let wasOpen = false; // a connection was open before: the next open is a reconnect
let countdown = null;
const ownPending = []; // texts this tab sent that have not come back yet

function setState(state, text) {
  const node = $('#state');
  node.dataset.state = state;
  node.textContent = text;
  $('#send').disabled = state !== 'open';
}

function backoff(n) {
  // Full delay doubles each time, capped; half of it is random, so that
  // many tabs dropped together do not come back together.
  const full = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** n);
  return full / 2 + Math.random() * (full / 2);
}

function connect() {
  clearInterval(countdown);
  setState('connecting', 'connecting');
  const sock = new WebSocket(wsURL);
  sock.binaryType = 'arraybuffer';
  ws = sock;
  sock.addEventListener('open', () => {
    if (sock !== ws) return;
    if (wasOpen) addMessage({ system: true, text: 'reconnected' });
    wasOpen = true;
    attempt = 0;
    setState('open', 'open');
  });
  sock.addEventListener('message', (ev) => {
    if (sock !== ws) return;
    if (typeof ev.data === 'string') receive(ev.data);
    else addMessage({ system: true, text: `binary message, ${ev.data.byteLength} bytes` });
  });
  sock.addEventListener('close', (ev) => {
    if (sock !== ws) return;
    $('#state').dataset.lastCloseCode = String(ev.code);
    const code = ev.code ? `code ${ev.code}${ev.reason ? `, ${ev.reason}` : ''}` : 'no code';
    if (attempt === 0 && wasOpen) addMessage({ system: true, text: `disconnected (${code})` });
    const delay = backoff(attempt++);
    const until = Date.now() + delay;
    const show = () => {
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setState('closed', `closed (${code}) · retry in ${s}s`);
    };
    show();
    countdown = setInterval(show, 1000);
    setTimeout(connect, delay);
  });
}

// receive shows one text message from the gateway. The gateway's own error
// frames ({"message": ..., "connectionId": ..., "requestId": ...}) are shown
// as notices.
function receive(text) {
  let frame = null;
  if (text.startsWith('{')) {
    try {
      frame = JSON.parse(text);
    } catch {
      frame = null;
    }
  }
  if (frame && typeof frame.message === 'string' && 'requestId' in frame && 'connectionId' in frame) {
    addMessage({ system: true, text: `gateway: ${frame.message}` });
    return;
  }
  const i = ownPending.indexOf(text);
  const mine = i >= 0;
  if (mine) ownPending.splice(i, 1);
  addMessage({ text, mine });
}

function addMessage({ text, mine = false, system = false }) {
  const list = $('#messages');
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const li = document.createElement('li');
  li.className = system ? 'msg system' : mine ? 'msg mine' : 'msg';
  li.dataset.text = text;
  const m = system ? null : /^([^:\n]{1,32}): ([\s\S]*)$/.exec(text);
  if (m) {
    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = m[1];
    li.append(from);
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = m ? m[2] : text;
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  li.append(body, time);
  list.append(li);
  while (list.children.length > MAX_MESSAGES) list.firstElementChild.remove();
  $('#messages-empty').hidden = true;
  if (nearBottom || mine) list.scrollTop = list.scrollHeight;
}

function setup() {
  $('#endpoint').textContent = wsURL;
  if (name) {
    const who = $('#who');
    who.textContent = `as ${name}`;
    who.hidden = false;
    document.title = `${name} · Switchboard chat`;
  }
  $('#chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('#message');
    const text = input.value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    const data = name ? `${name}: ${text}` : text;
    ws.send(JSON.stringify({ action: 'sendMessage', data }));
    ownPending.push(data);
    if (ownPending.length > 50) ownPending.shift();
    input.value = '';
    input.focus();
  });
  connect();
}

setup();
