// shout answers each message with its data in capitals.
exports.shout = async (event) => {
  let data = '';
  try {
    data = String(JSON.parse(event.body).data ?? '');
  } catch {
    data = event.body;
  }
  return { statusCode: 200, body: data.toUpperCase() };
};
