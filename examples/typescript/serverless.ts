// The Serverless Framework's aws-nodejs-typescript template, with a
// WebSocket chat beside its http "hello". From the repository root:
//   (cd examples/typescript && npm install)
//   go run ./cmd/switchboard serve --serverless examples/typescript/serverless.ts
import type { AWS } from '@serverless/typescript';

import { chat, hello } from '@functions/index';

const serverlessConfiguration: AWS = {
  service: 'typescript-chat',
  frameworkVersion: '3',
  provider: {
    name: 'aws',
    runtime: 'nodejs20.x',
    stage: 'dev',
    websocketsApiRouteSelectionExpression: '$request.body.action',
    environment: {
      AWS_NODEJS_CONNECTION_REUSE_ENABLED: '1',
      NODE_OPTIONS: '--enable-source-maps --stack-trace-limit=1000',
    },
  },
  functions: { hello, chat },
  package: { individually: true },
};

module.exports = serverlessConfiguration;
