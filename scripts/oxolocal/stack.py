"""The template's resources on a moto server, and its functions run in-process against them.

moto's own SNS->Lambda trigger needs Docker and fails silently, so we never use it: an SQS queue
subscribed to the topic taps what is published, and ``carry_published`` hands each message to the
dispatch handler as the SNS event Lambda would build. ``drain_retries`` plays the SQS event
source mapping for the retry function, partial batch failures included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from . import template as tpl
from .receivers import local_ca

REGION = "us-east-1"
# What the functions need to run against loopback receivers: the outbound guard opened for
# loopback and nothing else. REQUIRE_HTTPS stays at its default (on): the receivers serve TLS for
# localhost from a throwaway CA, which the functions trust through SSL_CERT_FILE (set by Stack).
# Retries are compressed locally: no jitter, no 60 s floor after a 429 or timeout.
LOCAL_ALLOWLIST = "127.0.0.0/8,::1/128"
LOCAL_FUNCTION_ENV = {
    "TARGET_ALLOWLIST": LOCAL_ALLOWLIST,
    "RETRY_JITTER": "0",
    "RETRY_AFTER_THROTTLE_SECONDS": "0",
}
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class LambdaContext:
    """Enough of Lambda's context object for Powertools and the handlers."""

    function_name: str
    memory_limit_in_mb: int = 256
    timeout_seconds: float = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def use_local_aws(endpoint: str) -> None:
    """Point every boto3 client in this process at the local endpoint, with dummy credentials."""
    os.environ.update(LOCAL_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    boto3.setup_default_session()


def atomic_dynamodb() -> None:
    """Make each of moto's DynamoDB requests atomic, as DynamoDB's are.

    moto applies a conditional write or a transaction without a lock: two requests at once can both
    pass a condition that only one may (both open the same window, both take the same slot). Real
    DynamoDB never lets that happen, so a fake that does would fail correct code under concurrency
    (and could hide races of our own behind its own). One lock around every DynamoDB request, in
    process (mock_aws) and in the threaded server alike. Idempotent."""
    import threading

    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_atomic", False):
        return
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    call_action._atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


@contextmanager
def moto_server(own_process: bool = False) -> Iterator[str]:
    """A moto server on a free loopback port, for as long as the block runs.

    ``own_process``: in a process of its own, as AWS is, so its work does not share this process's
    interpreter lock with the code being measured (the bench); tests keep it in process."""
    if own_process:
        with _moto_process() as endpoint:
            yield endpoint
        return
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the console
    atomic_dynamodb()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _serve_moto(pipe: Any) -> None:
    with moto_server() as endpoint:
        pipe.send(endpoint)
        pipe.recv()  # until the parent says stop (or goes away)


@contextmanager
def _moto_process() -> Iterator[str]:
    import multiprocessing

    parent, child = multiprocessing.get_context("fork").Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve_moto, args=(child,), daemon=True)
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the moto server process did not start within 60 s")
        yield str(parent.recv())
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


LOCAL_TYPES = ("AWS::SNS::Topic", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::DynamoDB::Table")


class Stack:
    """The template's topic, bucket, queues and ledger table, created on the endpoint boto3 points at."""

    def __init__(
        self,
        template: dict[str, Any] | None = None,
        parameters: dict[str, str] | None = None,
        name_prefix: str = "oxoflow-local",
        overrides: dict[str, str] | None = None,
        region: str = REGION,
    ) -> None:
        atomic_dynamodb()
        # Environment for every function run here; the local CA is trusted as a private CA would be.
        self.overrides = {**LOCAL_FUNCTION_ENV, "SSL_CERT_FILE": local_ca().ca_file, **(overrides or {})}
        self.template = template or tpl.load()
        self.name_prefix = name_prefix
        self.parameters = parameters or {}
        self.region = region
        self.s3 = boto3.client("s3", region_name=region)
        self.sqs = boto3.client("sqs", region_name=region)
        self.sns = boto3.client("sns", region_name=region)
        self.dynamodb = boto3.client("dynamodb", region_name=region)
        self.physical: dict[str, dict[str, str]] = {}
        self.tap_url = ""
        self._loaded: dict[str, Callable[..., Any]] = {}
        self.modules: dict[str, Any] = {}  # logical id -> the imported handler module

    # -- provisioning ----------------------------------------------------------------------

    def provision(self) -> Stack:
        resources = self.template["Resources"]
        pending = {k: v for k, v in resources.items() if v["Type"] in LOCAL_TYPES}
        while pending:  # queues may point at each other (redrive): create what can be resolved
            progressed = False
            for logical_id, resource in list(pending.items()):
                try:
                    self._create(logical_id, resource)
                except KeyError:
                    continue
                del pending[logical_id]
                progressed = True
            if not progressed:
                raise RuntimeError(f"cannot resolve local resources: {sorted(pending)}")
        topic = self.topic_arn
        tap = self.sqs.create_queue(QueueName=f"{self.name_prefix}-sns-tap")["QueueUrl"]
        tap_arn = self.sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=tap_arn)
        self.tap_url = tap
        return self

    def _create(self, logical_id: str, resource: dict[str, Any]) -> None:
        """Create one resource, or reuse it when the endpoint already has it (a second `invoke`
        against the same AWS_ENDPOINT_URL): provisioning is idempotent, as a deploy is."""
        from botocore.exceptions import ClientError

        resolver = self.resolver()
        props = resolver.resolve(resource.get("Properties", {}))
        name = f"{self.name_prefix}-{logical_id.lower()}"
        if resource["Type"] == "AWS::SNS::Topic":
            arn = self.sns.create_topic(Name=name)["TopicArn"]  # returns the existing topic's ARN
            self.physical[logical_id] = {"Ref": arn, "TopicArn": arn, "TopicName": name}
        elif resource["Type"] == "AWS::S3::Bucket":
            try:
                where = {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
                self.s3.create_bucket(Bucket=name, **where)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            if props.get("VersioningConfiguration"):
                self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            self.physical[logical_id] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif resource["Type"] == "AWS::DynamoDB::Table":
            table = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode", "LocalSecondaryIndexes") if k in props}
            try:
                arn = self.dynamodb.create_table(TableName=name, **table)["TableDescription"]["TableArn"]
            except self.dynamodb.exceptions.ResourceInUseException:  # "Table already exists": reuse it
                arn = self.dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
            else:
                ttl = props.get("TimeToLiveSpecification")
                if ttl:
                    self.dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            self.physical[logical_id] = {"Ref": name, "Arn": arn}
        else:
            attributes = {}
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize"):
                if key in props:
                    attributes[key] = str(props[key])
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            try:
                url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            except self.sqs.exceptions.QueueNameExists:  # exists with other attributes: reuse it, as it is
                url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.physical[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def resolver(self) -> tpl.Resolver:
        return tpl.Resolver(self.template, self.physical, self.parameters)

    def _logical(self, kind: str) -> str:
        return str(next(k for k, v in self.template["Resources"].items() if v["Type"] == kind))

    @property
    def topic_arn(self) -> str:
        return self.physical[self._logical("AWS::SNS::Topic")]["Ref"]

    @property
    def bucket(self) -> str:
        return self.physical[self._logical("AWS::S3::Bucket")]["Ref"]

    @property
    def retry_queue_url(self) -> str:
        return self.physical["RetryQueue"]["QueueUrl"]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.physical["DeadLetterQueue"]["QueueUrl"]

    # -- functions -------------------------------------------------------------------------

    def function_env(self, logical_id: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
        spec = tpl.functions(self.template)[logical_id]
        env = {k: str(v) for k, v in self.resolver().resolve(spec.environment).items()}
        env.update(self.overrides)
        env.update(overrides or {})
        return env

    def handler(self, logical_id: str, overrides: dict[str, str] | None = None) -> Callable[[dict[str, Any], Any], Any]:
        """Import a function's handler as Lambda would: its CodeUri and layers on the path, its
        environment set first (module-scope clients read it). Imported once per stack."""
        if logical_id in self._loaded:
            return self._loaded[logical_id]
        spec = tpl.functions(self.template)[logical_id]
        os.environ.update(self.function_env(logical_id, overrides))
        for layer in spec.layer_dirs:
            if str(layer) not in sys.path:
                sys.path.insert(0, str(layer))
        module_name, func_name = spec.handler.rsplit(".", 1)
        path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
        unique = f"oxolocal_fn_{logical_id}_{uuid.uuid4().hex[:8]}"
        module_spec = importlib.util.spec_from_file_location(unique, path)
        assert module_spec and module_spec.loader
        module = importlib.util.module_from_spec(module_spec)
        sys.path.insert(0, str(spec.code_dir))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(spec.code_dir))
        handler: Callable[[dict[str, Any], Any], Any] = getattr(module, func_name)
        self.modules[logical_id] = module
        self._loaded[logical_id] = handler
        return handler

    def restart(self, logical_id: str) -> None:
        """A new container, as after a kill: the next invoke imports the handler afresh (every
        module-scope client and cache of the old one gone)."""
        self._loaded.pop(logical_id, None)
        self.modules.pop(logical_id, None)

    def invoke(
        self, logical_id: str, event: dict[str, Any], overrides: dict[str, str] | None = None, timeout_seconds: float | None = None
    ) -> Any:
        """Run a handler as Lambda would, with the template's timeout (or ``timeout_seconds``) on its context."""
        spec = tpl.functions(self.template)[logical_id]
        timeout = spec.timeout if timeout_seconds is None else timeout_seconds
        context = LambdaContext(function_name=logical_id, memory_limit_in_mb=spec.memory, timeout_seconds=timeout)
        return self.handler(logical_id, overrides)(event, context)

    # -- data ------------------------------------------------------------------------------

    def put_config(self, workflow: str, text: str, prefix: str = "workflows/") -> str:
        key = f"{prefix}{workflow}.oxoflow"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"))
        return key

    def publish(self, message: str | dict[str, Any]) -> str:
        body = message if isinstance(message, str) else json.dumps(message)
        return str(self.sns.publish(TopicArn=self.topic_arn, Message=body)["MessageId"])

    def receive(self, queue_url: str, max_messages: int = 10, wait: int = 0) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait, AttributeNames=["All"]
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def depth(self, queue_url: str) -> dict[str, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
        attrs = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return {"visible": int(attrs[names[0]]), "delayed": int(attrs[names[1]]), "in_flight": int(attrs[names[2]])}

    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        """Read and delete everything visible in a queue; bodies parsed as JSON (a letter kept in
        S3 behind a pointer read through it, as replay reads it)."""
        bodies = []
        while batch := self.receive(queue_url):
            for message in batch:
                bodies.append(json.loads(self.resolve(message["Body"])))
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def resolve(self, body: str) -> str:
        """A queue message's body, through its pointer when it was kept in S3 (aws.letters)."""
        from oxoflow_notify.aws.letters import LetterStore, resolve_body

        return resolve_body(body, LetterStore(self.s3, self.bucket))

    def carry_published(self, function: str = "DispatchFunction") -> list[Any]:
        """Hand everything published to the topic to the dispatch handler, one SNS event each."""
        results = []
        while batch := self.receive(self.tap_url):
            for message in batch:
                envelope = json.loads(message["Body"])
                results.append(self.invoke(function, sns_event(envelope)))
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return results

    def drain_retries(
        self,
        function: str = "RetryFunction",
        rounds: int = 20,
        settle: float = 0.0,
        *,
        timeout_seconds: float | None = None,
        on_crash: tuple[type[BaseException], ...] = (),
        until_empty: float | None = None,
    ) -> int:
        """Feed the retry queue to the retry handler until it is empty (or `rounds` runs out).

        Deletes what the handler accepted and leaves its batchItemFailures for SQS to redeliver,
        as the event source mapping does. Returns the number of records handled.

        ``timeout_seconds`` bounds each invocation's context (default: the template's timeout).
        A handler that raises one of ``on_crash`` died: its whole batch failed, and SQS delivers it
        again. With ``until_empty`` (seconds), `rounds` and `settle` do not apply: the drain goes
        on until the queue holds nothing, delayed and in-flight messages included (three empty
        looks in a row, 0.05 s apart; a delayed message is looked for every 0.1 s), and what failed
        is made visible again at once rather than after the queue's visibility timeout.
        TimeoutError if the queue is not empty in time."""
        if until_empty is None:
            return self._drain_rounds(function, rounds, settle, timeout_seconds, on_crash)
        handled, idle, give_up = 0, 0, time.monotonic() + until_empty
        while idle < 3:
            if time.monotonic() > give_up:
                raise TimeoutError(f"the retry queue is not empty after {until_empty:.0f} s: {self.depth(self.retry_queue_url)}")
            batch = self.receive(self.retry_queue_url, wait=0)
            if not batch:
                empty = not any(self.depth(self.retry_queue_url).values())
                idle = idle + 1 if empty else 0
                time.sleep(0.05 if empty else 0.1)
                continue
            idle = 0
            for message in self._retry_batch(function, batch, timeout_seconds, on_crash):
                self.sqs.change_message_visibility(
                    QueueUrl=self.retry_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            handled += len(batch)
        return handled

    def _drain_rounds(
        self, function: str, rounds: int, settle: float, timeout_seconds: float | None, on_crash: tuple[type[BaseException], ...]
    ) -> int:
        handled = 0
        for _ in range(rounds):
            batch = self.receive(self.retry_queue_url, wait=0)
            if not batch:
                if settle:
                    time.sleep(settle)
                    batch = self.receive(self.retry_queue_url, wait=0)
                if not batch:
                    break
            self._retry_batch(function, batch, timeout_seconds, on_crash)  # what failed stays in flight
            handled += len(batch)
        return handled

    def _retry_batch(
        self, function: str, batch: list[dict[str, Any]], timeout_seconds: float | None, on_crash: tuple[type[BaseException], ...]
    ) -> list[dict[str, Any]]:
        """One invocation of the retry handler on a received batch, as the event source mapping makes
        it: deletes the messages it accepted, returns those that failed (all of them if it crashed)."""
        try:
            result = self.invoke(function, sqs_event(batch, self.physical["RetryQueue"]["Arn"]), timeout_seconds=timeout_seconds)
            failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        except on_crash:  # the function died: SQS delivers the whole batch again
            failed = {message["MessageId"] for message in batch}
        for message in batch:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.retry_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [message for message in batch if message["MessageId"] in failed]


def sns_event(envelope: dict[str, Any], subscription: str = "local") -> dict[str, Any]:
    """The Lambda SNS event for one SNS notification (as delivered to an SQS subscriber)."""
    attributes = {k: {"Type": v.get("Type", "String"), "Value": v.get("Value")} for k, v in envelope.get("MessageAttributes", {}).items()}
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{envelope.get('TopicArn', '')}:{subscription}",
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope["MessageId"],
                    "TopicArn": envelope.get("TopicArn", ""),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope["Message"],
                    "Timestamp": envelope["Timestamp"],
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", ""),
                    "SigningCertUrl": envelope.get("SigningCertURL", ""),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event for messages received from a queue."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def repo_path(*parts: str) -> Path:
    return tpl.ROOT.joinpath(*parts)
