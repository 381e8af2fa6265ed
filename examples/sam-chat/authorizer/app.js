// The $connect REQUEST authorizer: the token query parameter must be
// CHAT_TOKEN. API Gateway answers 401 when the token is missing (the
// identity source) and 403 when this policy denies.
exports.handler = async (event) => {
  const token = (event.queryStringParameters || {}).token;
  const effect = token === process.env.CHAT_TOKEN ? 'Allow' : 'Deny';
  return {
    principalId: 'chat-user',
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: event.methodArn }],
    },
    context: { tokenChecked: 'yes' },
  };
};
