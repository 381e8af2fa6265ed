// authorize is an API Gateway Lambda REQUEST authorizer: it reads the token
// from the query string and answers with an IAM policy for $connect.
exports.authorize = async (event) => {
  const token = event.queryStringParameters?.token;
  const allowed = token === 'let-me-in';
  return {
    principalId: allowed ? 'user-42' : 'anonymous',
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: allowed ? 'Allow' : 'Deny', Resource: event.methodArn }],
    },
    context: { plan: 'pro' }, // replayed as requestContext.authorizer on every event
  };
};

// whoami answers with what the authorizer said about this connection.
exports.whoami = async (event) => ({
  statusCode: 200,
  body: JSON.stringify(event.requestContext.authorizer),
});
