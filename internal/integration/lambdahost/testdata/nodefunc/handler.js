// The Node.js functions lambdahost's tests host, one export per behaviour.
'use strict';

// echo is an async handler that returns its event.
exports.echo = async (event) => event;

// callback answers through the callback, after a timer, with what it was given.
exports.callback = (event, context, callback) => {
  setTimeout(() => {
    callback(null, {
      event,
      requestId: context.awsRequestId,
      functionName: context.functionName,
      remainingMs: context.getRemainingTimeInMillis(),
      waits: context.callbackWaitsForEmptyEventLoop,
    });
  }, 5);
};

// callbackError fails through the callback.
exports.callbackError = (event, context, callback) => {
  callback(new RangeError('callback failed'));
};

// throws rejects with a TypeError.
exports.throws = async () => {
  throw new TypeError('bad input');
};

// env returns the process's environment and id.
exports.env = async () => ({ env: process.env, pid: process.pid });

// sleep answers after event.ms milliseconds.
exports.sleep = (event) => new Promise((resolve) => setTimeout(() => resolve({ pid: process.pid }), event.ms));

// exit ends the process in the middle of an invocation.
exports.exit = async () => {
  process.exit(3);
};

// log writes event.msg to stdout and stderr.
exports.log = async (event) => {
  console.log(event.msg);
  console.error(`${event.msg} (stderr)`);
  return 'logged';
};

// nested.deep is reached with the handler "handler.nested.deep".
exports.nested = { deep: async () => 'deep' };

// proxy answers a WebSocket route like an API Gateway Lambda proxy integration.
exports.proxy = async (event) => ({
  statusCode: 200,
  headers: { 'X-Route': event.requestContext.routeKey },
  body: `got ${event.body}`,
});

// The completion rules of AWS's Node.js runtime, one export each. Pending
// work writes event.file, so that a test can tell whether it ran before the
// answer.
const fs = require('node:fs');

// later writes event.file after event.ms milliseconds.
function later(event) {
  setTimeout(() => fs.writeFileSync(event.file, 'ran'), event.ms);
}

// returnsObject takes a callback, never calls it, and returns {}: the
// invocation succeeds with null once its pending work has run.
exports.returnsObject = (event, context, callback) => {
  later(event);
  return {};
};

// returnsValue takes no callback and returns a value that is not a promise:
// AWS ignores the value and answers null once its pending work has run.
exports.returnsValue = (event) => {
  later(event);
  return { statusCode: 200 };
};

// callbackWaits answers through the callback at once and leaves work
// pending; event.waits sets context.callbackWaitsForEmptyEventLoop.
exports.callbackWaits = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.waits;
  later(event);
  callback(null, { pid: process.pid });
};

// pid answers with the process's id.
exports.pid = async () => ({ pid: process.pid });

// rejects returns a rejected promise without being async.
exports.rejects = () => Promise.reject(new SyntaxError('rejected'));

// throwsSync throws from a callback-style handler.
exports.throwsSync = (event, context, callback) => {
  throw new EvalError('thrown');
};

// legacy answers through context.done, context.succeed or context.fail, as
// event.call says, with work pending that these do not wait for.
exports.legacy = (event, context) => {
  later(event);
  switch (event.call) {
    case 'done':
      context.done(null, { via: 'done' });
      break;
    case 'doneError':
      context.done(new URIError('done failed'));
      break;
    case 'succeed':
      context.succeed({ via: 'succeed' });
      break;
    case 'fail':
      context.fail(new RangeError('fail failed'));
      break;
    case 'failEmpty':
      context.fail();
      break;
  }
};

// twice answers through the callback, then again through context.succeed:
// the first answer counts.
exports.twice = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  callback(null, 'first');
  context.succeed('second');
};

// contextFields returns every field of the context AWS provides.
exports.contextFields = async (event, context) => ({
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  awsRequestId: context.awsRequestId,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  remainingMs: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  legacy: [typeof context.done, typeof context.succeed, typeof context.fail],
});
