import type { APIGatewayProxyResult, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';

interface Message {
  action?: string;
  to?: string;
  data?: string;
}

// main answers through the management API at the address the client used,
// https://{domainName}/{stage}, as a deployed function does.
export const main = async (event: APIGatewayProxyWebsocketEventV2): Promise<APIGatewayProxyResult> => {
  const { connectionId, domainName, routeKey, stage } = event.requestContext;
  if (routeKey === '$connect' || routeKey === '$disconnect') {
    console.log(`${routeKey} ${connectionId}`);
    return { statusCode: 200, body: '' };
  }
  const message = JSON.parse(event.body ?? '{}') as Message;
  if (routeKey === '$default') {
    throw new Error(`no route for ${JSON.stringify(message.action)}`);
  }
  const client = new ApiGatewayManagementApiClient({ endpoint: `https://${domainName}/${stage}` });
  await client.send(
    new PostToConnectionCommand({
      ConnectionId: message.to ?? connectionId,
      Data: message.data ?? '',
    }),
  );
  return { statusCode: 200, body: '' };
};
