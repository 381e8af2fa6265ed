// Creates the tutorial's table in the DynamoDB at DYNAMODB_ENDPOINT, once
// it answers.
const AWS = require("aws-sdk");

const db = new AWS.DynamoDB({ endpoint: process.env.DYNAMODB_ENDPOINT, region: "us-east-1" });

async function main() {
  for (let i = 0; ; i++) {
    try {
      await db
        .createTable({
          TableName: process.env.TABLE_NAME || "chat-connections",
          AttributeDefinitions: [{ AttributeName: "connectionId", AttributeType: "S" }],
          KeySchema: [{ AttributeName: "connectionId", KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST",
        })
        .promise();
      return;
    } catch (err) {
      if (err.code === "ResourceInUseException") return;
      if (i >= 300) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

main().catch((err) => {
  console.error(`create-table: ${err.message}`);
  process.exit(1);
});
