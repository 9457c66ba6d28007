"""Publish one oxo-flow event with boto3.

Needs: OXOFLOW_NOTIFY_TOPIC_ARN (the stack's TopicArn output), AWS_DEFAULT_REGION and AWS credentials.
(boto3 reads the region from AWS_DEFAULT_REGION or the AWS profile, not from AWS_REGION.)
"""

import json
import os

import boto3


def publish(event: str, workflow: str, **fields: object) -> str:
    message = {"event": event, "workflow": workflow, **fields}
    response = boto3.client("sns").publish(
        TopicArn=os.environ["OXOFLOW_NOTIFY_TOPIC_ARN"],
        Message=json.dumps(message),
        # Attributes let other subscribers filter (e.g. only RuleFailed of one workflow).
        MessageAttributes={
            "event": {"DataType": "String", "StringValue": event},
            "workflow": {"DataType": "String", "StringValue": workflow},
        },
    )
    return str(response["MessageId"])


if __name__ == "__main__":
    workflow = os.environ.get("WORKFLOW", "variant-calling")
    print(publish("RuleFailed", workflow, rule="align_reads", details={"exit_code": 1}))
