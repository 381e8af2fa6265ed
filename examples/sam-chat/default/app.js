// $default, callback-style: it tells the sender how to chat and returns {}
// without calling back, as older samples do. The invocation succeeds once
// the push has gone out (the event loop is empty).
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} = require('@aws-sdk/client-apigatewaymanagementapi');

exports.handler = function (event, context, callback) {
  const { domainName, stage, connectionId } = event.requestContext;
  const api = new ApiGatewayManagementApiClient({ endpoint: `https://${domainName}/${stage}` });
  api
    .send(new PostToConnectionCommand({
      ConnectionId: connectionId,
      Data: 'Use the sendmessage route to send a message: {"action":"sendmessage","data":"hello"}',
    }))
    .catch((e) => console.error(`push to ${connectionId} failed: ${e.message}`));
  return {};
};
