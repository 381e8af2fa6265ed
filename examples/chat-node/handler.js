// The chat tutorial's handlers, as written for API Gateway. The management
// API client reaches the gateway through APIG_ENDPOINT; the list of
// connections comes from the gateway (GET /@connections), so no table of
// connection IDs is kept anywhere else.
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
  GoneException,
} = require("@aws-sdk/client-apigatewaymanagementapi");

const endpoint = process.env.APIG_ENDPOINT;
const api = new ApiGatewayManagementApiClient({ endpoint });

exports.connect = async (event) => {
  console.log(`connect ${event.requestContext.connectionId}`);
  if (event.queryStringParameters && event.queryStringParameters.deny === "1") {
    return { statusCode: 401 };
  }
  return { statusCode: 200 };
};

exports.disconnect = async (event) => {
  console.log(`disconnect ${event.requestContext.connectionId} (${event.requestContext.disconnectStatusCode})`);
  return { statusCode: 200 };
};

exports.sendMessage = async (event) => {
  const { data } = JSON.parse(event.body);
  const res = await fetch(`${endpoint}/@connections?limit=1000`);
  const { items } = await res.json();
  await Promise.all(
    items.map(async ({ connectionId }) => {
      try {
        await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
      } catch (err) {
        if (!(err instanceof GoneException)) throw err;
      }
    }),
  );
  return { statusCode: 200 };
};

// A two-way route: the body goes back to the caller.
exports.whoami = (event, context, callback) => {
  callback(null, {
    statusCode: 200,
    body: JSON.stringify({
      connectionId: event.requestContext.connectionId,
      routeKey: event.requestContext.routeKey,
      greeting: process.env.GREETING,
      requestId: context.awsRequestId,
    }),
  });
};
