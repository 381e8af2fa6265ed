// Switchboard's Node.js runtime for hosted Lambda functions.
//
// The lambdahost package runs `node bootstrap.js` in the function's code
// directory, with the Lambda environment set. This file loads the handler
// named by _HANDLER ("file.export", file relative to LAMBDA_TASK_ROOT) and
// then loops: GET the next event from the Runtime API, call the handler, POST
// its result or its error. A handler that cannot be loaded is reported on
// /runtime/init/error, and the process exits.
//
// Handlers may be async (return a promise) or take a callback as their third
// argument. context.callbackWaitsForEmptyEventLoop is accepted but not
// honoured: the result is posted as soon as it is known.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const env = process.env;
const api = `http://${env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime`;

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

async function post(route, body, errorType) {
  const headers = { 'Content-Type': 'application/json' };
  if (errorType) {
    headers['Lambda-Runtime-Function-Error-Type'] = errorType;
  }
  const res = await fetch(api + route, { method: 'POST', headers, body });
  const text = await res.text();
  if (res.status !== 202) {
    throw new Error(`POST ${route}: ${res.status} ${text}`);
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

function makeContext(id, deadline, headers) {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers.get('lambda-runtime-invoked-function-arn'),
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: id,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

// call runs the handler in either style and settles with the first answer:
// the callback, the returned promise, or (for a handler that takes no
// callback) the value it returned.
function call(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err) => {
      if (!settled) {
        settled = true;
        reject(err === undefined || err === null ? new Error('handler failed without a reason') : err);
      }
    };
    const succeed = (result) => {
      if (!settled) {
        settled = true;
        resolve(result);
      }
    };
    const callback = (err, result) => (err === undefined || err === null ? succeed(result) : fail(err));
    context.done = callback;
    context.succeed = succeed;
    context.fail = fail;
    let ret;
    try {
      ret = handler(event, context, callback);
    } catch (err) {
      fail(err);
      return;
    }
    if (ret !== null && typeof ret === 'object' && typeof ret.then === 'function') {
      ret.then(succeed, fail);
    } else if (handler.length < 3) {
      succeed(ret);
    }
  });
}

async function serve(handler) {
  for (;;) {
    const res = await fetch(`${api}/invocation/next`);
    if (res.status !== 200) {
      throw new Error(`GET /invocation/next: ${res.status} ${await res.text()}`);
    }
    const id = res.headers.get('lambda-runtime-aws-request-id');
    const deadline = Number(res.headers.get('lambda-runtime-deadline-ms'));
    const trace = res.headers.get('lambda-runtime-trace-id');
    if (trace) {
      env._X_AMZN_TRACE_ID = trace;
    } else {
      delete env._X_AMZN_TRACE_ID;
    }
    const payload = await res.text();
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
      const value = await call(handler, event, makeContext(id, deadline, res.headers));
      try {
        result = JSON.stringify(value) ?? 'null';
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

async function main() {
  let handler;
  try {
    handler = await loadHandler(env.LAMBDA_TASK_ROOT || process.cwd(), env._HANDLER || '');
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
