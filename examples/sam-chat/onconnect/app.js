// $connect: remember the connection. AWS's sample keeps connection IDs in a
// DynamoDB table; here each is a file in CONNECTIONS_DIR.
const fs = require('fs');
const os = require('os');
const path = require('path');

const dir = path.resolve(os.tmpdir(), process.env.CONNECTIONS_DIR);

exports.handler = async (event) => {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, encodeURIComponent(event.requestContext.connectionId)), '');
  return { statusCode: 200, body: 'Connected.' };
};
