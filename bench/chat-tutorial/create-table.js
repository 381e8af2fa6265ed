// Creates the tutorial's table in the DynamoDB at DYNAMODB_ENDPOINT, once
// it answers, and waits until the table is ACTIVE: before that, DynamoDB
// (and dynalite) refuse its items with ResourceNotFoundException.
const AWS = require("aws-sdk");

const db = new AWS.DynamoDB({ endpoint: process.env.DYNAMODB_ENDPOINT, region: "us-east-1" });
const TableName = process.env.TABLE_NAME || "chat-connections";
const pause = () => new Promise((r) => setTimeout(r, 100));

async function main() {
  for (let i = 0; ; i++) {
    try {
      await db
        .createTable({
          TableName,
          AttributeDefinitions: [{ AttributeName: "connectionId", AttributeType: "S" }],
          KeySchema: [{ AttributeName: "connectionId", KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST",
        })
        .promise();
      break;
    } catch (err) {
      if (err.code === "ResourceInUseException") break;
      if (i >= 300) throw err;
      await pause();
    }
  }
  for (let i = 0; ; i++) {
    const { Table } = await db.describeTable({ TableName }).promise();
    if (Table.TableStatus === "ACTIVE") return;
    if (i >= 300) throw new Error(`table ${TableName} is still ${Table.TableStatus}`);
    await pause();
  }
}

main().catch((err) => {
  console.error(`create-table: ${err.message}`);
  process.exit(1);
});
