"""template.yaml declares what the pipeline needs, least-privilege, and the local tools read it."""

from __future__ import annotations

import json
from typing import Any

from oxoflow_notify.config import TIMEOUT_RANGE
from oxoflow_notify.settings import Settings
from oxolocal import template as tpl

CONFIG_READ_ALLOWANCE = 6.0  # two conditional S3 GETs within the SDK's timeouts and retries

TEMPLATE = tpl.load()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
ENV_NAMES = ("CONFIG_BUCKET", "CONFIG_PREFIX", "RETRY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "RETRY_SCHEDULE", "CONFIG_CACHE_SECONDS")


def of_type(kind: str) -> dict[str, Any]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def test_the_pipeline_resources_are_declared() -> None:
    assert set(of_type("AWS::SNS::Topic")) == {"NotifyTopic", "AlarmTopic"}
    assert set(of_type("AWS::SQS::Queue")) == {"RetryQueue", "DeadLetterQueue"}
    assert set(of_type("AWS::Serverless::Function")) == {"DispatchFunction", "RetryFunction", "IngestFunction"}
    assert len(of_type("AWS::Serverless::LayerVersion")) == 1


def test_functions_run_a_current_python_on_arm64_with_the_layer() -> None:
    glob = TEMPLATE["Globals"]["Function"]
    assert glob["Runtime"] in ("python3.12", "python3.13")
    assert glob["Architectures"] == ["arm64"]
    specs = tpl.functions(TEMPLATE)
    for spec in specs.values():
        assert spec.handler == "app.lambda_handler"
        assert (spec.code_dir / "app.py").exists()
        assert [d.name for d in spec.layer_dirs] == ["notify"]
        for name in ENV_NAMES:
            assert name in spec.environment
        assert "POWERTOOLS_SERVICE_NAME" in spec.environment and "POWERTOOLS_METRICS_NAMESPACE" in spec.environment


def test_event_sources() -> None:
    dispatch = RESOURCES["DispatchFunction"]["Properties"]
    assert [e["Type"] for e in dispatch["Events"].values()] == ["SNS"]
    assert dispatch["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    (retry_source,) = RESOURCES["RetryFunction"]["Properties"]["Events"].values()
    assert retry_source["Type"] == "SQS"
    assert retry_source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_policies_are_sam_policy_templates_without_wildcard_actions() -> None:
    for name in ("DispatchFunction", "RetryFunction", "IngestFunction"):
        policies = RESOURCES[name]["Properties"]["Policies"]
        assert all(isinstance(p, dict) and len(p) == 1 and next(iter(p)).endswith("Policy") for p in policies)
    policies = ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy")  # their only "*" is in Deny statements
    text = json.dumps({k: v for k, v in RESOURCES.items() if v["Type"] not in policies})
    assert '"Action": "*"' not in text and ':*"' not in text


def test_bucket_is_versioned_encrypted_and_private() -> None:
    (bucket,) = of_type("AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())


def test_retry_queue_redrives_to_the_dead_letter_queue_which_keeps_14_days() -> None:
    retry = RESOURCES["RetryQueue"]["Properties"]
    assert retry["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert RESOURCES["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 1209600


def test_outputs_have_descriptions() -> None:
    assert all(o.get("Description") for o in TEMPLATE["Outputs"].values())


def test_only_named_principals_may_publish_and_only_over_tls() -> None:
    (policy,) = of_type("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    allow = next(s for s in statements if isinstance(s, dict) and s.get("Sid") == "PublishFromThisAccount")
    deny = next(s for s in statements if isinstance(s, dict) and s.get("Sid") == "DenyInsecureTransport")
    assert allow["Action"] == "sns:Publish" and "iam::${AWS::AccountId}:root" in allow["Principal"]["AWS"]["Fn::Sub"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_guard_and_secrets_settings_are_parameters_with_safe_defaults() -> None:
    params = TEMPLATE["Parameters"]
    assert params["RequireHttps"]["Default"] == "true" and params["TargetAllowlist"]["Default"] == ""
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["REQUIRE_HTTPS"] == {"Ref": "RequireHttps"} and env["SECRETS_PREFIX"] == {"Ref": "SecretsPrefix"}
    for name in ("DispatchFunction", "RetryFunction"):
        kinds = [next(iter(p)) for p in RESOURCES[name]["Properties"]["Policies"]]
        assert "SSMParameterReadPolicy" in kinds and "AWSSecretsManagerGetSecretValuePolicy" in kinds


def test_timeouts_cover_the_worst_case_and_the_visibility_timeout_covers_the_retry_function() -> None:
    params = TEMPLATE["Parameters"]
    # One delivery's deadline at the largest timeout a config may set, plus the reserve kept back
    # for queueing retries, plus time to read the configs: every POST (posted all at once, in the
    # dispatcher and the retry batch alike) can be tried within any allowed function timeout.
    settings = Settings(config_bucket="b", retry_queue_url="r", dead_letter_queue_url="d")
    slowest = settings.connect_timeout + TIMEOUT_RANGE[1] + settings.invocation_reserve + CONFIG_READ_ALLOWANCE
    for name in ("FunctionTimeout", "RetryFunctionTimeout"):
        assert params[name]["MinValue"] >= slowest, f"{name} may be set below one delivery's worst case ({slowest:.1f} s)"
        assert params[name]["Default"] >= params[name]["MinValue"]
    assert params["RetryVisibilityTimeout"]["Default"] >= 6 * params["RetryFunctionTimeout"]["Default"]
    assert params["RetryVisibilityTimeout"]["MinValue"] >= 6 * params["RetryFunctionTimeout"]["MinValue"]
    assert RESOURCES["RetryFunction"]["Properties"]["Timeout"] == {"Ref": "RetryFunctionTimeout"}


def test_nothing_is_lost_at_the_sns_hop_and_operators_are_alarmed() -> None:
    (source,) = RESOURCES["DispatchFunction"]["Properties"]["Events"].values()
    assert source["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    (queue_policy,) = of_type("AWS::SQS::QueuePolicy").values()
    statement = queue_policy["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"} and statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Ref": "NotifyTopic"
    }
    alarms = {v["Properties"]["MetricName"]: v["Properties"] for v in of_type("AWS::CloudWatch::Alarm").values()}
    assert alarms["ApproximateNumberOfMessagesVisible"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}
    assert alarms["ApproximateAgeOfOldestMessage"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["RetryQueue", "QueueName"]}
    (dashboard,) = of_type("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0]
    for metric in ("Delivered", "Failed", "Retried", "DeadLettered", "DeliveryLatency"):
        assert metric in body
    json.loads(body.replace("${AWS::Region}", "r").replace("${DeadLetterQueueName}", "d").replace("${RetryQueueName}", "q"))


def test_the_delivery_ledger_is_a_ttl_table_both_functions_may_use() -> None:
    # the table Powertools Idempotency expects: partition key "id", TTL on "expiration"
    (name, table) = next(iter(of_type("AWS::DynamoDB::Table").items()))
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST" and props["SSESpecification"]["SSEEnabled"] is True
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["LEDGER_TABLE"] == {"Ref": name}
    for function in ("DispatchFunction", "RetryFunction"):
        assert {"DynamoDBCrudPolicy": {"TableName": {"Ref": name}}} in RESOURCES[function]["Properties"]["Policies"]


def test_the_ingest_url_is_unauthenticated_only_because_every_request_is_signed() -> None:
    ingest = RESOURCES["IngestFunction"]["Properties"]
    assert ingest["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert ingest["Environment"]["Variables"]["INGEST_SECRET"] == {"Ref": "IngestSecret"}
    assert TEMPLATE["Parameters"]["IngestSecret"]["AllowedPattern"] == "^(ssm:/|secretsmanager:).+$"  # a reference, never the secret
    assert {"SNSPublishMessagePolicy": {"TopicName": {"Fn::GetAtt": ["NotifyTopic", "TopicName"]}}} in ingest["Policies"]
    assert "IngestUrl" in TEMPLATE["Outputs"]
