// Callback-style handlers. connect and ping never call their callback and
// return {}: the runtime answers null (a success) once their work is done
// (the event loop is empty). echo answers through the callback after a
// timer.
'use strict';

const endpoint = process.env.APIG_ENDPOINT;

exports.connect = function (event, context, callback) {
  setTimeout(() => console.log(`connected ${event.requestContext.connectionId}`), 10);
  return {};
};

exports.ping = function (event, context, callback) {
  const id = event.requestContext.connectionId;
  fetch(`${endpoint}/@connections/${encodeURIComponent(id)}`, { method: 'POST', body: 'pong' })
    .then((res) => console.log(`pushed pong to ${id}: ${res.status}`))
    .catch((err) => console.error(`push to ${id} failed: ${err.message}`));
  return {};
};

exports.echo = function (event, context, callback) {
  const { data } = JSON.parse(event.body);
  setTimeout(() => callback(null, { statusCode: 200, body: `echo: ${data}` }), 10);
};
