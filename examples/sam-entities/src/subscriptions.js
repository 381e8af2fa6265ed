// The subscriptions: which connections want the events of which entity.
//
// They are kept as files, DIR/<entityId>/<connectionId>, one empty file per
// subscription, where DIR is SUBSCRIPTIONS_DIR (relative to the system's
// temporary directory): they outlive the function processes and a restart of
// the gateway, and every function of the stack on this machine sees them.
// On AWS each function instance has a /tmp of its own, so there they belong
// in a DynamoDB table (entityId the partition key, connectionId the sort key,
// an index on connectionId for forget): the handlers use only these four
// functions, and only this file changes.
const fs = require('fs/promises');
const os = require('os');
const path = require('path');

const dir = path.resolve(os.tmpdir(), process.env.SUBSCRIPTIONS_DIR || 'entity-subscriptions');

// An entity ID is a file name here: letters, digits, and _ . : - after the first.
const entityIdRE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

exports.validEntityId = (id) => typeof id === 'string' && entityIdRE.test(id);

// subscribe adds connectionId to the subscribers of entityId.
exports.subscribe = async (entityId, connectionId) => {
  const d = path.join(dir, entityId);
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, encodeURIComponent(connectionId)), '');
};

// subscribers lists the connections subscribed to entityId.
exports.subscribers = async (entityId) => {
  try {
    return (await fs.readdir(path.join(dir, entityId))).map(decodeURIComponent);
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
};

// forget removes every subscription of connectionId: it has gone.
exports.forget = async (connectionId) => {
  let entities;
  try {
    entities = await fs.readdir(dir);
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw e;
  }
  const name = encodeURIComponent(connectionId);
  await Promise.all(entities.map((e) => fs.rm(path.join(dir, e, name), { force: true })));
};
