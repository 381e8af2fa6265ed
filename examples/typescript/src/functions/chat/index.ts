import { handlerPath } from '@libs/handler-resolver';

const handler = `${handlerPath(__dirname)}/handler.main`;

export default {
  handler,
  events: [
    { websocket: { route: '$connect' } },
    { websocket: { route: '$disconnect' } },
    { websocket: { route: 'sendMessage' } },
    { websocket: { route: '$default' } },
  ],
};
