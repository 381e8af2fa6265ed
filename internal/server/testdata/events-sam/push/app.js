// whoami answers a client with its connection ID; push posts an
// EntityUpdated event's detail to the connection it names, with the AWS SDK
// for JavaScript v3.
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} = require('@aws-sdk/client-apigatewaymanagementapi');

exports.whoami = async (event) => ({ statusCode: 200, body: event.requestContext.connectionId });

exports.push = async (event) => {
  const client = new ApiGatewayManagementApiClient({ endpoint: process.env.APIG_ENDPOINT });
  await client.send(new PostToConnectionCommand({
    ConnectionId: event.detail.subscriber,
    Data: JSON.stringify({ source: event.source, entity: event.detail.entity }),
  }));
};
