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
