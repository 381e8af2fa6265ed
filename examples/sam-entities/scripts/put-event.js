// Puts one entity event on EventBridge's default bus, as a backend does:
//
//   node scripts/put-event.js order-42 '{"status":"shipped"}'
//   node scripts/put-event.js --source other.app order-42 '{"status":"shipped"}'
//
// The detail is the JSON object given (default {}) with entityId added.
// The endpoint is AWS_ENDPOINT_URL_EVENTBRIDGE (for a local gateway,
// http://127.0.0.1:3001), else AWS's. Prints PutEvents' answer; exits 1
// when the entry failed.
const { EventBridgeClient, PutEventsCommand } = require('@aws-sdk/client-eventbridge');

async function main(argv) {
  let source = 'example.entities';
  let detailType = 'EntityChanged';
  const args = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--source') source = argv[++i];
    else if (argv[i] === '--detail-type') detailType = argv[++i];
    else args.push(argv[i]);
  }
  const [entityId, detail = '{}'] = args;
  if (!entityId || !source || !detailType) {
    console.error('usage: put-event.js [--source S] [--detail-type T] ENTITY_ID [DETAIL_JSON]');
    process.exit(2);
  }
  const client = new EventBridgeClient({ region: process.env.AWS_REGION || 'us-east-1', maxAttempts: 1 });
  const out = await client.send(new PutEventsCommand({
    Entries: [{ Source: source, DetailType: detailType, Detail: JSON.stringify({ ...JSON.parse(detail), entityId }) }],
  }));
  console.log(JSON.stringify({ FailedEntryCount: out.FailedEntryCount, Entries: out.Entries }));
  if (out.FailedEntryCount > 0) process.exit(1);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e.message);
  process.exit(1);
});
