import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { formatJSONResponse } from '@libs/api-gateway';

export const main = async (event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> => {
  const { name } = JSON.parse(event.body ?? '{}') as { name?: string };
  return formatJSONResponse({
    message: `Hello ${name ?? 'world'}, welcome to the exciting Serverless world!`,
  });
};
