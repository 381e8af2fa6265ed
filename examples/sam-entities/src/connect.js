// $connect: every client may connect; it subscribes afterwards.
exports.handler = async (event) => {
  console.log(`connected: ${event.requestContext.connectionId}`);
  return { statusCode: 200 };
};
