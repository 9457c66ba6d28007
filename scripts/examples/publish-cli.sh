#!/bin/sh
# Publish one oxo-flow event with the oxoflow-notify command (pip install .): it validates the
# event against the schema first and sets the message attributes.
# Needs: OXOFLOW_NOTIFY_TOPIC_ARN (the stack's TopicArn output) and AWS credentials.
# (The region: --region, AWS_REGION or AWS_DEFAULT_REGION, else the one in the topic ARN.)
set -eu
oxoflow-notify publish --event RuleFailed --workflow "${WORKFLOW:-variant-calling}" --rule align_reads --details '{"exit_code": 1}'
