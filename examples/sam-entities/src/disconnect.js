// $disconnect: the connection's subscriptions go with it.
const subscriptions = require('./subscriptions');

exports.handler = async (event) => {
  await subscriptions.forget(event.requestContext.connectionId);
  return { statusCode: 200 };
};
