// sendmessage: post the message's data to every connection, as AWS's sample
// does, through the callback URL built from the event:
// https://{domainName}/{stage}. Connections that are gone (410) are forgotten.
const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
} = require('@aws-sdk/client-apigatewaymanagementapi');

const dir = path.resolve(os.tmpdir(), process.env.CONNECTIONS_DIR);

exports.handler = async (event) => {
  let ids;
  try {
    ids = fs.readdirSync(dir).map(decodeURIComponent);
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }
  const apigwManagementApi = new ApiGatewayManagementApiClient({
    apiVersion: '2018-11-29',
    endpoint: 'https://' + event.requestContext.domainName + '/' + event.requestContext.stage,
  });
  const postData = JSON.parse(event.body).data;
  const postCalls = ids.map(async (connectionId) => {
    try {
      await apigwManagementApi.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: postData }));
    } catch (e) {
      if (e.$metadata && e.$metadata.httpStatusCode === 410) {
        console.log(`Found stale connection, deleting ${connectionId}`);
        fs.rmSync(path.join(dir, encodeURIComponent(connectionId)), { force: true });
      } else {
        throw e;
      }
    }
  });
  try {
    await Promise.all(postCalls);
  } catch (e) {
    return { statusCode: 500, body: e.stack };
  }
  return { statusCode: 200, body: 'Data sent.' };
};
