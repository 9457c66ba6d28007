#!/bin/sh
# Publish one oxo-flow event with the AWS CLI (v1 or v2).
# Needs: OXOFLOW_NOTIFY_TOPIC_ARN (the stack's TopicArn output), AWS_DEFAULT_REGION and AWS credentials.
# (AWS CLI v1 reads the region from AWS_DEFAULT_REGION, or --region, not from AWS_REGION.)
set -eu
WORKFLOW="${WORKFLOW:-variant-calling}"
aws sns publish \
  --topic-arn "$OXOFLOW_NOTIFY_TOPIC_ARN" \
  --message "{\"event\":\"RuleFailed\",\"workflow\":\"$WORKFLOW\",\"rule\":\"align_reads\",\"details\":{\"exit_code\":1}}" \
  --message-attributes "{\"event\":{\"DataType\":\"String\",\"StringValue\":\"RuleFailed\"},\"workflow\":{\"DataType\":\"String\",\"StringValue\":\"$WORKFLOW\"}}" \
  --query MessageId --output text
