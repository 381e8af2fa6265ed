// Switchboard's Node.js runtime for hosted Lambda functions.
//
// The lambdahost package runs `node bootstrap.js` in the function's code
// directory, with the Lambda environment set. This file loads the handler
// named by _HANDLER ("file.export", file relative to LAMBDA_TASK_ROOT) and
// then loops: GET the next event from the Runtime API, call the handler, POST
// its result or its error. A handler that cannot be loaded is reported on
// /runtime/init/error, and the process exits.
//
// Handlers complete as under AWS's Node.js runtime interface client:
//   - a returned promise settles the invocation with its value or reason;
//   - callback(err) and context.done/succeed/fail answer at once;
//   - callback(null, result) answers when the event loop empties, or at
//     once when context.callbackWaitsForEmptyEventLoop is false (the host
//     then freezes the process until the next invocation, pending timers
//     and all);
//   - a handler that returns anything but a promise without answering
//     succeeds with null when the event loop empties.
// The first answer counts; later ones are reported and ignored.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const env = process.env;

// current is the request id of the invocation in progress, if any.
let current = null;

// RuntimeError is a failure of the runtime rather than of the handler.
class RuntimeError extends Error {
  constructor(type, message, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = type;
  }
}

// errorBody turns whatever was thrown, rejected or passed to a callback into
// the Runtime API's error JSON.
function errorBody(err) {
  if (err instanceof Error) {
    const stack = typeof err.stack === 'string' ? err.stack.split('\n').slice(1).map((l) => l.trim()) : [];
    return { errorType: err.name || 'Error', errorMessage: String(err.message), stackTrace: stack };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    message = String(err);
  }
  return { errorType: typeof err, errorMessage: String(message), stackTrace: [] };
}

// The Runtime API client: requests are written to a TCP connection and
// their responses read from it directly, one at a time, on a connection
// kept open between them. node:http's client (a ClientRequest, an agent and
// streams per request, the URL parsed each time) was most of this
// process's time in a warm invocation; fetch would add a client loaded on
// first use and a 300 s headers timeout that ends a longer wait for work
// (or fires at once when a process frozen for longer is thawed).
//
// The host's Runtime API answers every request with a Content-Length body
// and keeps the connection unless it says "Connection: close".
const apiAddr = env.AWS_LAMBDA_RUNTIME_API || '';
const apiPort = Number(apiAddr.slice(apiAddr.lastIndexOf(':') + 1));
const apiHost = apiAddr.slice(0, apiAddr.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const apiPath = '/2018-06-01/runtime';
const CRLF2 = Buffer.from('\r\n\r\n');
// A connection's request under way and the bytes of its response so far.
const kPending = Symbol('pending');
const kReceived = Symbol('received');

// idle is the open connection no request uses, if any.
let idle = null;

// request makes one call to the Runtime API and resolves with its status,
// headers (lower-case names) and body. It uses the idle connection, or a
// new one when that is taken (an uncaught exception reported while a
// request is under way) or closed. A connection keeps the event loop alive
// only while a request is under way, so that an empty event loop still
// tells that a handler's work is done.
function request(method, route, headers, body) {
  return new Promise((resolve, reject) => {
    let sock = idle;
    idle = null;
    if (sock === null || sock.destroyed) {
      sock = net.connect({ host: apiHost, port: apiPort, noDelay: true });
      let failure = null;
      sock.on('error', (err) => {
        failure = err; // reported by the request under way, on 'close'
      });
      sock.on('close', () => {
        if (idle === sock) {
          idle = null;
        }
        const f = sock[kPending];
        sock[kPending] = null;
        if (f !== null && f !== undefined) {
          const why = failure === null ? 'the Runtime API closed the connection' : failure.message;
          f.reject(new Error(`${f.method} ${apiPath}${f.route}: ${why}`));
        }
      });
      sock.on('data', (chunk) => onData(sock, chunk));
    }
    sock.ref();
    sock[kReceived] = { chunks: [], size: 0, head: -1, length: 0, status: 0, headers: {} };
    sock[kPending] = { method, route, resolve, reject };
    let head = `${method} ${apiPath}${route} HTTP/1.1\r\nHost: ${apiAddr}\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      head += `${k}: ${v}\r\n`;
    }
    if (body === undefined) {
      sock.write(head + '\r\n');
    } else {
      sock.write(`${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
  });
}

// onData gathers a response; once it is whole, the request under way
// resolves and the connection becomes idle, or closes if the Runtime API
// said so. The chunks of a large event are joined once, when all are in.
function onData(sock, chunk) {
  const f = sock[kPending];
  if (f === null || f === undefined) {
    sock.destroy(); // nothing was asked
    return;
  }
  const r = sock[kReceived];
  r.chunks.push(chunk);
  r.size += chunk.length;
  if (r.head < 0) {
    const data = r.chunks.length === 1 ? chunk : Buffer.concat(r.chunks);
    r.chunks = [data];
    const end = data.indexOf(CRLF2);
    if (end < 0) {
      return;
    }
    const lines = data.toString('latin1', 0, end).split('\r\n');
    r.status = Number(lines[0].split(' ')[1]);
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon > 0) {
        r.headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
      }
    }
    r.head = end + 4;
    r.length = Number(r.headers['content-length'] || 0);
  }
  if (r.size < r.head + r.length) {
    return;
  }
  const data = r.chunks.length === 1 ? r.chunks[0] : Buffer.concat(r.chunks);
  sock[kPending] = null;
  sock[kReceived] = null;
  if (r.size > r.head + r.length || (r.headers.connection || '').toLowerCase() === 'close') {
    sock.destroy();
  } else {
    sock.unref();
    if (idle === null) {
      idle = sock;
    } else {
      sock.destroy();
    }
  }
  f.resolve({ status: r.status, headers: r.headers, body: data.toString('utf8', r.head, r.head + r.length) });
}

// next long-polls for the next invocation.
function next() {
  return request('GET', '/invocation/next', {}, undefined);
}

async function post(route, body, errorType) {
  const headers = { 'Content-Type': 'application/json' };
  if (errorType) {
    headers['Lambda-Runtime-Function-Error-Type'] = errorType;
  }
  const res = await request('POST', route, headers, body);
  if (res.status !== 202) {
    throw new Error(`POST ${route}: ${res.status} ${res.body}`);
  }
}

async function postError(route, err, label) {
  const body = errorBody(err);
  console.error(`ERROR\t${label}\t${JSON.stringify(body)}`);
  await post(route, JSON.stringify(body), body.errorType);
}

// loadHandler finds the module and the exported function that spec names.
async function loadHandler(root, spec) {
  const slash = spec.lastIndexOf('/');
  const dot = spec.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === spec.length - 1) {
    throw new RuntimeError('Runtime.MalformedHandlerName', `bad handler ${JSON.stringify(spec)}: want "file.export"`);
  }
  const base = path.resolve(root, spec.slice(0, dot));
  const names = spec.slice(dot + 1).split('.');
  const file = ['.js', '.mjs', '.cjs'].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (file === undefined) {
    throw new RuntimeError('Runtime.ImportModuleError', `cannot find module ${base} (.js, .mjs or .cjs)`);
  }
  let mod;
  try {
    mod = await loadModule(file);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new RuntimeError('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`, err);
    }
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new RuntimeError('Runtime.ImportModuleError', err.message, err);
    }
    throw err;
  }
  const fn = lookup(mod, names) ?? lookup(mod && mod.default, names);
  if (typeof fn !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  }
  return fn;
}

// loadModule requires CommonJS and imports ES modules; a .js file may be
// either, so require is tried first and import second.
async function loadModule(file) {
  if (file.endsWith('.mjs')) {
    return import(pathToFileURL(file).href);
  }
  try {
    return require(file);
  } catch (err) {
    if (err && err.code === 'ERR_REQUIRE_ESM' && file.endsWith('.js')) {
      return import(pathToFileURL(file).href);
    }
    throw err;
  }
}

function lookup(obj, names) {
  let v = obj;
  for (const name of names) {
    if (v === null || v === undefined) {
      return undefined;
    }
    v = v[name];
  }
  return v;
}

// onEmpty, when set, answers the invocation in progress once the event loop
// has nothing left to do ('beforeExit'): the runtime's own work is idle
// while a handler runs, so only the handler's pending work keeps it busy.
let onEmpty = null;

process.on('beforeExit', () => {
  const f = onEmpty;
  onEmpty = null;
  if (f !== null) {
    f();
  }
});

// invoke runs the handler and settles with {ok, value} when the invocation
// is to be answered, following the completion rules above.
function invoke(handler, event, id, deadline, headers) {
  return new Promise((resolve) => {
    let answered = false;
    const answer = (ok, value) => {
      if (answered) {
        console.error(`WARN\t${id}\tthe invocation has already been answered; this answer is ignored`);
        return;
      }
      answered = true;
      onEmpty = null;
      resolve({ ok, value });
    };
    const done = (err, result) => {
      if (err === undefined || err === null) {
        answer(true, result);
      } else {
        answer(false, err);
      }
    };
    let waits = true;
    const callback = (err, result) => {
      if (answered) {
        answer(true, result); // reports the duplicate
      } else if ((err === undefined || err === null) && waits) {
        onEmpty = () => answer(true, result);
      } else {
        done(err, result);
      }
    };
    const context = {
      get callbackWaitsForEmptyEventLoop() {
        return waits;
      },
      set callbackWaitsForEmptyEventLoop(v) {
        waits = Boolean(v);
      },
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      awsRequestId: id,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done,
      succeed: (result) => done(null, result),
      fail: (err) => done(err === undefined || err === null ? 'handled' : err),
    };
    // Unless the handler answers first, it succeeds with null once its work
    // is done.
    onEmpty = () => answer(true, null);
    let ret;
    try {
      ret = handler(event, context, callback);
    } catch (err) {
      done(err);
      return;
    }
    if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
      ret.then(
        (v) => done(null, v),
        (err) => done(err === undefined || err === null ? new Error('handler rejected without a reason') : err),
      );
    }
  });
}

async function serve(handler) {
  for (;;) {
    const res = await next();
    if (res.status !== 200) {
      throw new Error(`GET /invocation/next: ${res.status} ${res.body}`);
    }
    const id = res.headers['lambda-runtime-aws-request-id'];
    const deadline = Number(res.headers['lambda-runtime-deadline-ms']);
    const trace = res.headers['lambda-runtime-trace-id'];
    if (trace) {
      env._X_AMZN_TRACE_ID = trace;
    } else {
      delete env._X_AMZN_TRACE_ID;
    }
    const payload = res.body;
    current = id;
    let ok = true;
    let result;
    try {
      let event;
      try {
        event = JSON.parse(payload);
      } catch (err) {
        throw new RuntimeError('Runtime.UnmarshalError', `cannot parse the event: ${err.message}`, err);
      }
      const answer = await invoke(handler, event, id, deadline, res.headers);
      if (!answer.ok) {
        throw answer.value;
      }
      try {
        result = JSON.stringify(answer.value) ?? 'null';
      } catch (err) {
        throw new RuntimeError('Runtime.MarshalError', `cannot serialise the result: ${err.message}`, err);
      }
    } catch (err) {
      ok = false;
      result = err;
    }
    try {
      if (ok) {
        await post(`/invocation/${id}/response`, result);
      } else {
        await postError(`/invocation/${id}/error`, result, 'Invoke Error');
      }
    } catch (err) {
      console.error(`ERROR\t${err.message}`);
    }
    current = null;
  }
}

// fatal reports an exception that escaped the handler, then exits: the host
// starts a new process for the next invocation.
async function fatal(err) {
  try {
    if (current !== null) {
      await postError(`/invocation/${current}/error`, err, 'Uncaught Exception');
    } else {
      console.error(`ERROR\tUncaught Exception\t${JSON.stringify(errorBody(err))}`);
    }
  } finally {
    process.exit(1);
  }
}

process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

// handlerRoot is where the handler's module is looked for: the host's build
// of a TypeScript handler when there is one, else the task root. The
// variable is the host's, not the function's: it is removed.
const handlerRoot = env._SWITCHBOARD_HANDLER_ROOT || env.LAMBDA_TASK_ROOT || process.cwd();
delete env._SWITCHBOARD_HANDLER_ROOT;

async function main() {
  let handler;
  try {
    handler = await loadHandler(handlerRoot, env._HANDLER || '');
  } catch (err) {
    try {
      await postError('/init/error', err, 'Init Error');
    } finally {
      process.exit(1);
    }
  }
  await serve(handler);
}

main().catch((err) => {
  console.error(`ERROR\truntime: ${err.message}`);
  process.exit(1);
});
