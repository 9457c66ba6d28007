#!/bin/bash
# Publish one oxo-flow event with nothing but curl (7.75 or later signs AWS requests itself):
# for HPC nodes without Python packages or an SDK.
# Needs: OXOFLOW_NOTIFY_TOPIC_ARN, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN
# with temporary credentials). (The region is the one in the topic ARN.)
set -euo pipefail
WORKFLOW="${WORKFLOW:-variant-calling}"
REGION="$(echo "$OXOFLOW_NOTIFY_TOPIC_ARN" | cut -d: -f4)"
ENDPOINT="${AWS_ENDPOINT_URL:-https://sns.$REGION.amazonaws.com}"
MESSAGE="{\"event\":\"RuleFailed\",\"workflow\":\"$WORKFLOW\",\"rule\":\"align_reads\",\"details\":{\"exit_code\":1}}"
token=()
if [ -n "${AWS_SESSION_TOKEN:-}" ]; then token=(--header "X-Amz-Security-Token: $AWS_SESSION_TOKEN"); fi
curl --fail --silent --show-error --max-time 20 --retry 3 \
  --aws-sigv4 "aws:amz:$REGION:sns" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "${token[@]}" \
  --data-urlencode "Action=Publish" \
  --data-urlencode "Version=2010-03-31" \
  --data-urlencode "TopicArn=$OXOFLOW_NOTIFY_TOPIC_ARN" \
  --data-urlencode "Message=$MESSAGE" \
  --data-urlencode "MessageAttributes.entry.1.Name=event" \
  --data-urlencode "MessageAttributes.entry.1.Value.DataType=String" \
  --data-urlencode "MessageAttributes.entry.1.Value.StringValue=RuleFailed" \
  --data-urlencode "MessageAttributes.entry.2.Name=workflow" \
  --data-urlencode "MessageAttributes.entry.2.Value.DataType=String" \
  --data-urlencode "MessageAttributes.entry.2.Value.StringValue=$WORKFLOW" \
  "$ENDPOINT/" | sed -n 's:.*<MessageId>\(.*\)</MessageId>.*:\1:p'
