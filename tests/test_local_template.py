"""The runner reads template.yaml like SAM: short-form intrinsics, Globals, layers, API and S3
events; and keeps the embedded database's unix socket within the path limit."""

from __future__ import annotations

import tempfile
from pathlib import Path

from devtools.local.database import usable_data_dir
from devtools.local.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, load_template
from tests.conftest import REPO_ROOT

SMALL_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: qa}
  Cap: {Type: Number, Default: 0}
Conditions:
  HasCap: !Not [!Equals [!Ref Cap, 0]]
Globals:
  Function:
    Handler: app.lambda_handler
    Timeout: 7
    Layers: [!Ref Shared]
    Environment:
      Variables:
        STAGE: !Ref Stage
        FROM_GLOBALS: "yes"
Resources:
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: layer}
  Files:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "files-${Stage}-${AWS::AccountId}-${AWS::Region}"
  Api:
    Type: AWS::Serverless::Api
    Properties: {StageName: !Ref Stage}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      FunctionName: !Sub worker-${Stage}
      Environment:
        Variables:
          BUCKET_ARN: !GetAtt Files.Arn
          JOINED: !Join ["-", [a, !Ref Stage]]
          CAPPED: !If [HasCap, "capped", "uncapped"]
          OPTIONAL: !If [HasCap, "x", !Ref AWS::NoValue]
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Files
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: suffix, Value: .pdf}]}}
        Read:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/files/{name}", Method: GET}
"""


def test_short_form_intrinsics_globals_and_events_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(SMALL_TEMPLATE)
    (tmp_path / "layer").mkdir()

    template = load_template(tmp_path / "template.yaml", {"Stage": "dev"})

    worker = template.function("Worker")
    assert worker.function_name == "worker-dev"
    assert template.function("worker-dev") is worker
    assert worker.timeout_seconds == 7
    assert worker.layer_dirs == ((tmp_path / "layer").resolve(),)
    bucket_name = f"files-dev-{LOCAL_ACCOUNT_ID}-{LOCAL_REGION}"
    assert dict(worker.environment) == {
        "STAGE": "dev",
        "FROM_GLOBALS": "yes",
        "BUCKET_ARN": f"arn:aws:s3:::{bucket_name}",
        "JOINED": "a-dev",
        "CAPPED": "uncapped",
    }
    assert template.buckets["Files"].name == bucket_name
    [subscription] = template.subscriptions
    assert subscription.matches("ObjectCreated:Put", "docs/a.pdf")
    assert not subscription.matches("ObjectCreated:Put", "docs/a.txt")
    assert not subscription.matches("ObjectRemoved:Delete", "docs/a.pdf")
    [route] = template.routes
    assert (route.path, route.method, template.stage_of(route)) == ("/files/{name}", "GET", "dev")


def test_the_repository_template_is_what_the_runner_expects() -> None:
    template = load_template(REPO_ROOT / "template.yaml")
    for function in template.functions.values():
        assert function.module_file.is_file(), function.logical_id
        assert all(directory.is_dir() for directory in function.layer_dirs)
    [subscription] = template.subscriptions
    assert subscription.prefix == "jobs/"
    assert subscription.matches("ObjectCreated:Put", "jobs/1/a.txt")
    assert subscription.matches("ObjectRemoved:DeleteMarkerCreated", "jobs/1/a.txt")
    # through the ingestion queue: the function gets the event source mapping's batches
    assert subscription.function == "IngestJobFunction"
    assert subscription.queue_name == "flex-dev-ingest-queue"
    assert template.buckets[subscription.bucket_resource].versioned
    methods = {(route.method, route.path) for route in template.routes}
    assert ("POST", "/search") in methods
    assert ("POST", "/interviews") in methods


QUEUED_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: qa}
Resources:
  Files:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "files-${Stage}"
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Inbox.Arn
            Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}]}}
          - Event: s3:ObjectRemoved:*
            Queue: !GetAtt Inbox.Arn
            Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}]}}
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Unread.Arn
  Inbox:
    Type: AWS::SQS::Queue
    Properties: {QueueName: !Sub "inbox-${Stage}"}
  Unread:
    Type: AWS::SQS::Queue
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/worker
      Handler: app.lambda_handler
      Events:
        FromInbox:
          Type: SQS
          Properties: {Queue: !GetAtt Inbox.Arn, BatchSize: 5}
"""


def test_notifications_through_a_queue_reach_the_function_that_reads_it(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text(QUEUED_TEMPLATE)

    template = load_template(tmp_path / "template.yaml")

    # the queue nobody reads delivers nowhere; the two configurations of Inbox are one
    [subscription] = template.subscriptions
    assert (subscription.function, subscription.event_name) == ("Worker", "FromInbox")
    assert subscription.queue_name == "inbox-qa"
    assert subscription.events == ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
    assert subscription.matches("ObjectRemoved:Delete", "in/a.txt")
    assert not subscription.matches("ObjectCreated:Put", "out/a.txt")


def test_a_deep_checkout_gets_a_short_database_directory() -> None:
    short = Path(tempfile.gettempdir()) / "flex" / "pgdata"
    assert usable_data_dir(short) == short.resolve()
    deep = Path(tempfile.gettempdir()) / ("very-long-directory-name-" * 5) / "pgdata"
    chosen = usable_data_dir(deep)
    assert chosen != deep
    assert len(str(chosen / ".s.PGSQL.5432").encode()) <= 107
    assert usable_data_dir(deep) == chosen  # the same place on every run
