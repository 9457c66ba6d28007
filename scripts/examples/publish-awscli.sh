#!/bin/sh
# Publish one oxo-flow event with the AWS CLI (v1 or v2).
# Needs: OXOFLOW_NOTIFY_TOPIC_ARN (the stack's TopicArn output) and AWS credentials.
set -eu
WORKFLOW="${WORKFLOW:-variant-calling}"
aws sns publish \
  --topic-arn "$OXOFLOW_NOTIFY_TOPIC_ARN" \
  --message "{\"event\":\"RuleFailed\",\"workflow\":\"$WORKFLOW\",\"rule\":\"align_reads\",\"details\":{\"exit_code\":1}}" \
  --message-attributes "{\"event\":{\"DataType\":\"String\",\"StringValue\":\"RuleFailed\"},\"workflow\":{\"DataType\":\"String\",\"StringValue\":\"$WORKFLOW\"}}" \
  --query MessageId --output text
