// subscribe: {"action":"subscribe","entityId":"order-42"} subscribes the
// connection to the entity's events. The route is two-way: the client is
// answered {"subscribed":"order-42"}, or {"error":...}.
const subscriptions = require('./subscriptions');

exports.handler = async (event) => {
  let entityId;
  try {
    entityId = JSON.parse(event.body).entityId;
  } catch {
    // not JSON: answered below
  }
  if (!subscriptions.validEntityId(entityId)) {
    return {
      statusCode: 400,
      body: JSON.stringify({ error: 'send {"action":"subscribe","entityId":"ID"}: ID of letters, digits, _ . : -' }),
    };
  }
  await subscriptions.subscribe(entityId, event.requestContext.connectionId);
  return { statusCode: 200, body: JSON.stringify({ subscribed: entityId }) };
};
