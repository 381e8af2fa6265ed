// A handler whose module takes 6 s to load (a cold start), then answers at once.
const started = Date.now();
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 6000);
exports.handler = async () => ({ loadedInMs: Date.now() - started });
