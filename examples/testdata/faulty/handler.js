// Handlers that fail in each way a Lambda function can.
exports.handle = async (event) => {
  const { do: what } = JSON.parse(event.body);
  switch (what) {
    case "throw":
      throw new Error("handler failed");
    case "exit":
      process.exit(7);
    case "hang":
      // Never settles while a timer keeps the event loop busy: the function
      // times out. (With an empty event loop the runtime would answer null.)
      return new Promise(() => setInterval(() => {}, 60000));
    default:
      return { statusCode: 200, body: event.body };
  }
};
