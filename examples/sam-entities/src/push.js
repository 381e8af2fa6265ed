// push: run by the queue with a batch of entity events (each record's body
// is the EventBridge event); posts each event to the subscribers of its
// entity with PostToConnection. Connections that are gone (410) are
// forgotten. An event that could not reach every subscriber is reported in
// batchItemFailures (ReportBatchItemFailures): it alone comes back after the
// queue's visibility timeout, and after maxReceiveCount tries it moves to
// the dead-letter queue. The others of the batch are done.
const fs = require('fs');
const os = require('os');
const path = require('path');
const {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
  GoneException,
} = require('@aws-sdk/client-apigatewaymanagementapi');
const subscriptions = require('./subscriptions');

// The endpoint is the API's stage URL, from
// AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI (see template.yaml).
const api = new ApiGatewayManagementApiClient({});

// Drills, to see the dead-letter queue and a restart at work, set by what
// the file DRILL_FILE holds:
//   fail  an event whose detail has "drill": true fails;
//   hold  pushes wait until the file says otherwise, or until a second
//         before the function's timeout: then the batch's events fail,
//         and come back after the queue's visibility timeout.
const drillFile = path.resolve(os.tmpdir(), process.env.DRILL_FILE || 'entity-drill');

function drill() {
  try {
    return fs.readFileSync(drillFile, 'utf8').trim();
  } catch {
    return '';
  }
}

exports.handler = async (event, context) => {
  if (drill() === 'hold') {
    console.log(`holding ${event.Records.length} event(s): ${drillFile} says hold`);
    while (drill() === 'hold') {
      if (context.getRemainingTimeInMillis() < 1000) {
        return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const failDrills = drill() === 'fail';
  const batchItemFailures = [];
  for (const record of event.Records) {
    try {
      await push(JSON.parse(record.body), failDrills);
    } catch (e) {
      console.error(`event of message ${record.messageId} (receive ${record.attributes.ApproximateReceiveCount}): ${e.message}`);
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
};

// push posts one EventBridge event to its entity's subscribers. Subscribers
// may get an event twice (when a post to another subscriber failed, the
// event is tried again): its id tells them.
async function push(ev, failDrills) {
  const { entityId } = ev.detail;
  if (!subscriptions.validEntityId(entityId)) {
    throw new Error(`the event ${ev.id} names no valid entityId`);
  }
  if (failDrills && ev.detail.drill === true) {
    throw new Error(`a drill event, and ${drillFile} says fail`);
  }
  const data = JSON.stringify({ entityId, type: ev['detail-type'], id: ev.id, time: ev.time, detail: ev.detail });
  const ids = await subscriptions.subscribers(entityId);
  const results = await Promise.allSettled(ids.map((id) => post(id, data)));
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) {
    throw new Error(`${failed.length} of ${ids.length} posts failed, the first: ${failed[0].reason.message}`);
  }
}

async function post(connectionId, data) {
  try {
    await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: data }));
  } catch (e) {
    if (e instanceof GoneException || (e.$metadata && e.$metadata.httpStatusCode === 410)) {
      console.log(`gone: ${connectionId}`);
      await subscriptions.forget(connectionId);
      return;
    }
    throw e;
  }
}
