// Publish one oxo-flow event with the AWS SDK for JavaScript v3 (npm install @aws-sdk/client-sns).
// Needs: OXOFLOW_NOTIFY_TOPIC_ARN (the stack's TopicArn output), AWS_REGION and AWS credentials.
// (The SDK for JavaScript reads the region from AWS_REGION or the AWS profile, not from AWS_DEFAULT_REGION.)
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";

const workflow = process.env.WORKFLOW ?? "variant-calling";
const message = { event: "RuleFailed", workflow, rule: "align_reads", details: { exit_code: 1 } };
const client = new SNSClient({});
const { MessageId } = await client.send(
  new PublishCommand({
    TopicArn: process.env.OXOFLOW_NOTIFY_TOPIC_ARN,
    Message: JSON.stringify(message),
    MessageAttributes: {
      event: { DataType: "String", StringValue: message.event },
      workflow: { DataType: "String", StringValue: workflow },
    },
  }),
);
console.log(MessageId);
