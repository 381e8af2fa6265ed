// The chat tutorial's handlers on the AWS SDK v2: $connect records the
// connection in a DynamoDB table and $disconnect removes it; sendMessage
// scans the table and posts the message to every connection, forgetting
// those that are gone; echo posts the message back to its sender, and
// $default tells the sender of any other message what the actions are.
const AWS = require("aws-sdk");

const ddb = new AWS.DynamoDB.DocumentClient({
  endpoint: process.env.DYNAMODB_ENDPOINT,
  region: process.env.AWS_REGION || "us-east-1",
});
const TableName = process.env.TABLE_NAME;

// The management API at the tutorial's https://{domainName}/{stage}, or
// at MGMT_ENDPOINT when set (serverless-offline serves it elsewhere).
function management(event) {
  const { domainName, stage } = event.requestContext;
  return new AWS.ApiGatewayManagementApi({
    apiVersion: "2018-11-29",
    endpoint: process.env.MGMT_ENDPOINT || `${domainName}/${stage}`,
  });
}

exports.connect = async (event) => {
  await ddb.put({ TableName, Item: { connectionId: event.requestContext.connectionId } }).promise();
  return { statusCode: 200, body: "Connected." };
};

exports.disconnect = async (event) => {
  await ddb.delete({ TableName, Key: { connectionId: event.requestContext.connectionId } }).promise();
  return { statusCode: 200, body: "Disconnected." };
};

exports.sendMessage = async (event) => {
  const { data } = JSON.parse(event.body);
  const { Items } = await ddb.scan({ TableName, ProjectionExpression: "connectionId" }).promise();
  const api = management(event);
  await Promise.all(
    Items.map(async ({ connectionId }) => {
      try {
        await api.postToConnection({ ConnectionId: connectionId, Data: data }).promise();
      } catch (err) {
        if (err.statusCode !== 410) throw err;
        await ddb.delete({ TableName, Key: { connectionId } }).promise();
      }
    }),
  );
  return { statusCode: 200, body: "Data sent." };
};

exports.echo = async (event) => {
  const { data } = JSON.parse(event.body);
  await management(event).postToConnection({ ConnectionId: event.requestContext.connectionId, Data: data }).promise();
  return { statusCode: 200, body: "Data sent." };
};

exports.defaultRoute = async (event) => {
  const help = JSON.stringify({ message: "unknown action; use sendMessage or echo" });
  await management(event).postToConnection({ ConnectionId: event.requestContext.connectionId, Data: help }).promise();
  return { statusCode: 200 };
};
