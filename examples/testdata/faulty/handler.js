// Handlers that fail in each way a Lambda function can.
exports.handle = async (event) => {
  const { do: what } = JSON.parse(event.body);
  switch (what) {
    case "throw":
      throw new Error("handler failed");
    case "exit":
      process.exit(7);
    case "hang":
      return new Promise(() => {}); // never settles: the function times out
    default:
      return { statusCode: 200, body: event.body };
  }
};
