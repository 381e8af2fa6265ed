// $disconnect: forget the connection.
const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = path.resolve(os.tmpdir(), process.env.CONNECTIONS_DIR);

exports.handler = async (event) => {
  fs.rmSync(path.join(dir, encodeURIComponent(event.requestContext.connectionId)), { force: true });
  return { statusCode: 200, body: 'Disconnected.' };
};
