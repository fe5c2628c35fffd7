"""template.yaml's wiring: what `sam validate` cannot know.

Every function's handler exists and imports; every API route is served by the function whose
app registers it; every method is behind AWS_IAM; IAM is scoped to exactly the Titan V2 model
and the proxy's database user; the bucket's notifications and failure handling are in place;
migrations run on deploy; the environment passes the layer's own configuration validation.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from devtools.template_scan import suppression_problems
from flex_shared.config import DEFAULT_DB_MAX_OVERFLOW, DEFAULT_DB_POOL_SIZE, load_settings
from tests.conftest import REPO_ROOT

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
SAMCONFIG_PATH = REPO_ROOT / "samconfig.toml"
TITAN_V2_ARN = (
    "arn:${AWS::Partition}:bedrock:${AWS::Region}::foundation-model/amazon.titan-embed-text-v2:0"
)
PROXY_USER_ARN = (
    "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}"
    ":dbuser:${DbProxyResourceId}/${DbUser}"
)
# SPEC.md: the functions, and every route with the function that must serve it.
SPEC_FUNCTIONS = {
    "IngestJobFunction": "ingest_job",
    "SearchFunction": "search",
    "InterviewResultsFunction": "interview_results",
    "MigrateFunction": "migrate",
}
SPEC_ROUTES = {
    ("POST", "/search"): "SearchFunction",
    ("GET", "/jobs/{}"): "SearchFunction",
    ("GET", "/jobs/{}/questions/suggested"): "SearchFunction",
    ("POST", "/interviews"): "InterviewResultsFunction",
    ("GET", "/interviews/{}"): "InterviewResultsFunction",
    ("PATCH", "/interviews/{}"): "InterviewResultsFunction",
    ("POST", "/interviews/{}/results"): "InterviewResultsFunction",
    ("GET", "/interviews/{}/results"): "InterviewResultsFunction",
    ("POST", "/questions"): "InterviewResultsFunction",
    ("GET", "/questions"): "InterviewResultsFunction",
    ("GET", "/questions/{}"): "InterviewResultsFunction",
    ("GET", "/jobs/{}/applicants"): "InterviewResultsFunction",
    ("GET", "/jobs/{}/insights"): "InterviewResultsFunction",
    ("DELETE", "/applicants/{}"): "InterviewResultsFunction",
}
EMBEDDING_FUNCTIONS = {"IngestJobFunction", "SearchFunction"}


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags into their long JSON form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=CloudFormationLoader)
    return template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(template, "AWS::Serverless::Function")


def function_setting(template: dict[str, Any], function: dict[str, Any], key: str) -> Any:
    """A function property, falling back to Globals as SAM does."""
    return function["Properties"].get(key, template["Globals"]["Function"].get(key))


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


NO_VALUE = {"Ref": "AWS::NoValue"}


def function_policies(function: dict[str, Any]) -> list[Any]:
    """The function's policies, both branches of a conditional (`!If`) one included."""
    policies: list[Any] = []
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Fn::If" in policy:
            _condition, *branches = policy["Fn::If"]
            policies.extend(branch for branch in branches if branch != NO_VALUE)
        else:
            policies.append(policy)
    return policies


def policy_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in function_policies(function):
        if isinstance(policy, dict) and "Statement" in policy:
            statements.extend(policy["Statement"])
    return statements


def statements_for(function: dict[str, Any], action: str) -> list[dict[str, Any]]:
    found = []
    for statement in policy_statements(function):
        actions = statement["Action"]
        if action in ([actions] if isinstance(actions, str) else actions):
            found.append(statement)
    return found


def api_events(function: dict[str, Any]) -> dict[str, dict[str, Any]]:
    events = function["Properties"].get("Events", {})
    return {name: e for name, e in events.items() if e["Type"] == "Api"}


def route_shape(method: str, path: str) -> tuple[str, str]:
    """('GET', '/jobs/{job_id}') -> ('GET', '/jobs/{}'): compares routes whatever the names."""
    return method.upper(), re.sub(r"\{[^}]+\}", "{}", path)


def registered_routes(module: ModuleType) -> set[tuple[str, str]]:
    """The (method, path) pairs the module's Powertools resolver(s) serve, in template syntax."""
    routes: set[tuple[str, str]] = set()
    for value in vars(module).values():
        if isinstance(value, ApiGatewayResolver):
            for route in value._static_routes + value._dynamic_routes:
                routes.add((route.method.upper(), re.sub(r"<(\w+)>", r"{\1}", route.path)))
    return routes


# --------------------------------------------------------------------------- functions


def test_the_four_functions_of_the_spec_share_runtime_architecture_and_layer(
    template: dict[str, Any],
) -> None:
    functions = functions_of(template)
    assert set(functions) == set(SPEC_FUNCTIONS)
    layers = resources_of(template, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"SharedLayer"}
    for name, function in functions.items():
        assert function_setting(template, function, "Runtime") == "python3.11", name
        assert function_setting(template, function, "Architectures") == ["arm64"], name
        assert {"Ref": "SharedLayer"} in function_setting(template, function, "Layers"), name
        assert function_setting(template, function, "Tracing") == "Active", name


def test_the_layer_is_built_by_sam_from_its_package_root(template: dict[str, Any]) -> None:
    layer = template["Resources"]["SharedLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    content = REPO_ROOT / layer["Properties"]["ContentUri"]
    # Its Makefile puts the package and the requirements under python/ (precompiled bytecode).
    makefile = (content / "Makefile").read_text()
    assert "build-SharedLayer:" in makefile
    assert "$(ARTIFACTS_DIR)/python" in makefile
    assert (content / "flex_shared" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()
    assert not (content / "python").exists()
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]


def test_every_artifact_is_built_with_precompiled_bytecode(template: dict[str, Any]) -> None:
    # Lambda's code directories are read-only: without shipped .pyc files every cold start
    # compiles every module again. devtools/lambda_build.mk compiles them (make layer-size checks).
    built = {**functions_of(template), **resources_of(template, "AWS::Serverless::LayerVersion")}
    for name, resource in built.items():
        assert resource["Metadata"]["BuildMethod"] == "makefile", name
        properties = resource["Properties"]
        code = REPO_ROOT / (properties.get("CodeUri") or properties["ContentUri"])
        makefile = (code / "Makefile").read_text()
        assert f"build-{name}:" in makefile, name
        assert "include $(REPO_ROOT)/devtools/lambda_build.mk" in makefile, name
        assert "$(call lambda_finish," in makefile, name


def test_layer_requirements_leave_out_what_the_runtime_has_and_heavy_extras() -> None:
    names = {
        re.split(r"[=<>\[ ]", line.strip(), maxsplit=1)[0].lower()
        for line in (REPO_ROOT / "layers/shared/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not names & {"boto3", "botocore", "lxml", "numpy"}


@pytest.mark.parametrize("logical_id", sorted(SPEC_FUNCTIONS))
def test_every_handler_exists_and_imports(
    template: dict[str, Any], logical_id: str, load_function: Callable[[str], ModuleType]
) -> None:
    function = template["Resources"][logical_id]
    code_dir = REPO_ROOT / function["Properties"]["CodeUri"]
    module_name, handler_name = function_setting(template, function, "Handler").rsplit(".", 1)
    assert code_dir == REPO_ROOT / "functions" / SPEC_FUNCTIONS[logical_id]
    assert (code_dir / f"{module_name}.py").is_file()

    module = load_function(code_dir.name)

    assert callable(getattr(module, handler_name))


def test_every_function_logs_to_a_retained_group_with_its_own_service_name(
    template: dict[str, Any],
) -> None:
    service_names = set()
    for name, function in functions_of(template).items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = template["Resources"][group]
        assert log_group["Type"] == "AWS::Logs::LogGroup", name
        assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        service_names.add(
            function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        )
    assert len(service_names) == len(SPEC_FUNCTIONS)


def test_the_template_environment_passes_the_layers_configuration_checks(
    template: dict[str, Any],
) -> None:
    # Resolve the parameters as a deploy would (defaults plus samconfig-like values).
    parameters = {
        name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
    }
    parameters |= {
        "DbProxyEndpoint": "flex-dev.proxy-abc123.us-east-1.rds.amazonaws.com",
        "DbProxyResourceId": "prx-0123456789abcdef0",
    }
    environment = {}
    for name, value in template["Globals"]["Function"]["Environment"]["Variables"].items():
        environment[name] = parameters[value["Ref"]] if isinstance(value, dict) else str(value)

    settings = load_settings(environment)

    assert settings.database_mode == "iam"
    assert settings.db_iam_auth is True
    assert settings.db_host == parameters["DbProxyEndpoint"]
    assert settings.embedding_provider == "titan"
    assert settings.embedding_model_id == "amazon.titan-embed-text-v2:0"
    assert "DATABASE_URL" not in environment
    assert "DB_SECRET_ARN" not in environment


def test_no_region_account_or_partition_is_hard_coded() -> None:
    text = TEMPLATE_PATH.read_text()
    assert not re.search(r"\b\d{12}\b", text)
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af|il)-[a-z]+-\d\b", text)
    assert "arn:aws:" not in text


# --------------------------------------------------------------------------- API


def test_every_spec_route_is_in_the_template_exactly_once(template: dict[str, Any]) -> None:
    seen: list[tuple[tuple[str, str], str]] = []
    for name, function in functions_of(template).items():
        for event in api_events(function).values():
            props = event["Properties"]
            seen.append((route_shape(props["Method"], props["Path"]), name))
    assert sorted(shape for shape, _ in seen) == sorted(SPEC_ROUTES)
    assert dict(seen) == SPEC_ROUTES


@pytest.mark.parametrize("logical_id", ["SearchFunction", "InterviewResultsFunction"])
def test_every_route_goes_to_the_function_whose_app_registers_it(
    template: dict[str, Any], logical_id: str, load_function: Callable[[str], ModuleType]
) -> None:
    function = template["Resources"][logical_id]
    in_template = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in api_events(function).values()
    }

    served = registered_routes(load_function(SPEC_FUNCTIONS[logical_id]))

    # Same paths, same parameter names: API Gateway's pathParameters match the handler's.
    assert in_template == served


def test_every_method_requires_aws_iam_and_api_gateway_invokes_with_its_own_permission(
    template: dict[str, Any],
) -> None:
    apis = resources_of(template, "AWS::Serverless::Api")
    assert set(apis) == {"FlexApi"}
    auth = apis["FlexApi"]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    assert auth["InvokeRole"] == "NONE"
    assert "Cors" not in apis["FlexApi"]["Properties"]  # no unauthenticated OPTIONS methods
    for name, function in functions_of(template).items():
        for event_name, event in api_events(function).items():
            props = event["Properties"]
            # An event without RestApiId would land on SAM's implicit API, outside this auth.
            assert props.get("RestApiId") == {"Ref": "FlexApi"}, (name, event_name)
            override = props.get("Auth", {}).get("Authorizer", "AWS_IAM")
            assert override == "AWS_IAM", (name, event_name)


def test_the_api_is_throttled_traced_and_access_logged(template: dict[str, Any]) -> None:
    props = template["Resources"]["FlexApi"]["Properties"]
    assert props["TracingEnabled"] is True
    [settings] = props["MethodSettings"]
    assert settings["ResourcePath"] == "/*"
    assert settings["HttpMethod"] == "*"
    assert "ThrottlingRateLimit" in settings
    assert "ThrottlingBurstLimit" in settings
    log_group = props["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert template["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"
    log_format = props["AccessLogSetting"]["Format"]
    assert json.loads(log_format.replace("$context.", "")).keys() >= {
        "requestId",
        "userArn",
        "status",
        "resourcePath",
    }


def test_every_api_function_is_capped_by_one_parameter_that_zero_lifts(
    template: dict[str, Any],
) -> None:
    """A burst cannot take more database connections than the parameter allows; 0 = no cap
    (accounts with a small concurrency quota cannot reserve any)."""
    capped = {"Fn::If": ["HasApiConcurrencyCap", {"Ref": "ApiReservedConcurrency"}, NO_VALUE]}
    api_functions = {name for name, f in functions_of(template).items() if api_events(f)}
    assert api_functions == {"SearchFunction", "InterviewResultsFunction"}
    for name in api_functions:
        assert template["Resources"][name]["Properties"]["ReservedConcurrentExecutions"] == capped
    assert template["Conditions"]["HasApiConcurrencyCap"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, 0]}]
    }
    parameter = template["Parameters"]["ApiReservedConcurrency"]
    assert parameter["Default"] > 0
    assert parameter["MinValue"] == 0


def test_the_documented_connection_sizing_matches_the_pool_the_functions_run_with(
    template: dict[str, Any],
) -> None:
    # The sizing rule (runs x connections per run) is only right while no function changes
    # the pool bounds it names.
    for name, function in functions_of(template).items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not {"DB_POOL_SIZE", "DB_MAX_OVERFLOW"} & set(variables), name
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert not {"DB_POOL_SIZE", "DB_MAX_OVERFLOW"} & set(globals_env)
    description = " ".join(template["Parameters"]["ApiReservedConcurrency"]["Description"].split())
    per_run = DEFAULT_DB_POOL_SIZE + DEFAULT_DB_MAX_OVERFLOW
    assert f"({DEFAULT_DB_POOL_SIZE} + {DEFAULT_DB_MAX_OVERFLOW}) connections" in description
    assert f"x {per_run} must fit the proxy's budget" in description
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert f"\N{MULTIPLICATION SIGN} {per_run} \N{LESS-THAN OR EQUAL TO}" in readme


# --------------------------------------------------------------------------- IAM


def test_bedrock_is_allowed_only_on_titan_v2_and_only_where_embeddings_are_made(
    template: dict[str, Any],
) -> None:
    for name, function in functions_of(template).items():
        statements = statements_for(function, "bedrock:InvokeModel")
        if name in EMBEDDING_FUNCTIONS:
            assert [s["Resource"] for s in statements] == [{"Fn::Sub": TITAN_V2_ARN}], name
            assert statements[0]["Action"] == "bedrock:InvokeModel"
        else:
            assert statements == [], name


def test_rds_db_connect_is_allowed_only_as_the_proxys_database_user(
    template: dict[str, Any],
) -> None:
    for name, function in functions_of(template).items():
        statements = statements_for(function, "rds-db:connect")
        assert [s["Resource"] for s in statements] == [{"Fn::Sub": PROXY_USER_ARN}], name
    parameters = template["Parameters"]
    assert parameters["DbProxyResourceId"]["AllowedPattern"] == "^prx-[a-z0-9]+$"


def test_no_statement_allows_everything(template: dict[str, Any]) -> None:
    for name, function in functions_of(template).items():
        for statement in policy_statements(function):
            assert statement["Effect"] == "Allow", name
            assert "*" not in json.dumps(statement["Resource"]), name
            actions = statement["Action"]
            assert all("*" not in a for a in ([actions] if isinstance(actions, str) else actions))
        templates = {
            key
            for policy in function_policies(function)
            if isinstance(policy, dict)
            for key in policy
            if key != "Statement"
        }
        assert templates <= {"S3ReadPolicy"}, name


def test_erasure_can_be_granted_alone_and_denied_by_its_route_arn(
    template: dict[str, Any],
) -> None:
    erasure_arn = (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}"
        ":${FlexApi}/${Stage}/DELETE/applicants/*"
    )
    [erase] = [
        event["Properties"]
        for event in api_events(template["Resources"]["InterviewResultsFunction"]).values()
        if event["Properties"]["Method"].upper() == "DELETE"
    ]
    assert erase["Path"] == "/applicants/{applicant_id}"
    policy = template["Resources"]["ApplicantErasureInvokePolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": {"Fn::Sub": erasure_arn}}
    ]
    outputs = template["Outputs"]
    assert outputs["ApplicantErasureInvokePolicyArn"]["Value"] == {
        "Ref": "ApplicantErasureInvokePolicy"
    }
    assert outputs["ApplicantErasureRouteArn"]["Value"] == {"Fn::Sub": erasure_arn}


# --------------------------------------------------------------------------- S3 ingestion


def test_the_bucket_is_versioned_encrypted_private_and_named_without_a_ref(
    template: dict[str, Any],
) -> None:
    bucket = template["Resources"]["JobsBucket"]
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert bucket["DeletionPolicy"] == "Retain"
    assert "Fn::Sub" in props["BucketName"]


def bucket_queue_notifications(template: dict[str, Any]) -> list[dict[str, Any]]:
    props = template["Resources"]["JobsBucket"]["Properties"]
    configurations: list[dict[str, Any]] = props["NotificationConfiguration"]["QueueConfigurations"]
    return configurations


def test_created_and_removed_objects_under_jobs_go_to_the_ingestion_queue(
    template: dict[str, Any],
) -> None:
    notifications = bucket_queue_notifications(template)
    assert sorted(n["Event"] for n in notifications) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for notification in notifications:
        assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
        assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "jobs/"}]
    props = template["Resources"]["JobsBucket"]["Properties"]
    assert set(props["NotificationConfiguration"]) == {"QueueConfigurations"}  # no direct Lambda
    # S3 checks it may send when the notifications are set: the queue's policy comes first.
    assert template["Resources"]["JobsBucket"]["DependsOn"] == "IngestQueuePolicy"
    [statement] = [
        s
        for s in template["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"][
            "Statement"
        ]
        if s["Effect"] == "Allow"
    ]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert statement["Condition"] == {
        "ArnLike": {
            "aws:SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:s3:::flex-${Stage}-jobs-${AWS::AccountId}"
                "-${AWS::Region}"
            }
        },
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }


def test_ingestion_takes_the_queue_in_batches_at_a_bounded_concurrency(
    template: dict[str, Any],
) -> None:
    function = template["Resources"]["IngestJobFunction"]["Properties"]
    [event] = function["Events"].values()
    assert event["Type"] == "SQS"
    props = event["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert props["BatchSize"] == {"Ref": "IngestBatchSize"}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IngestMaxConcurrency"}}
    parameters = template["Parameters"]
    # Lambda's bounds for MaximumConcurrency (2..1000) and for a batch without a window (10)
    assert (
        parameters["IngestMaxConcurrency"]["MinValue"],
        parameters["IngestMaxConcurrency"]["MaxValue"],
    ) == (2, 1000)
    assert parameters["IngestBatchSize"]["MaxValue"] <= 10
    # No reserved concurrency and no async retries: the mapping bounds it, the queue retries.
    assert "ReservedConcurrentExecutions" not in function
    assert "EventInvokeConfig" not in function


def test_the_queue_waits_six_function_timeouts_and_sends_what_keeps_failing_to_the_dlq(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    queue = resources["IngestQueue"]["Properties"]
    timeout = resources["IngestJobFunction"]["Properties"]["Timeout"]
    # AWS: visibility timeout at least 6x the function's timeout (Lambda refuses less than 1x)
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["IngestFailureQueue", "Arn"]
    }
    assert 3 <= queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    dlq = resources["IngestFailureQueue"]["Properties"]
    # a message keeps its first enqueue time in the DLQ: it must outlive the source queue
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert dlq["RedriveAllowPolicy"] == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [
            {
                "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}"
                ":flex-${Stage}-ingest-queue"
            }
        ],
    }
    assert queue["QueueName"] == {"Fn::Sub": "flex-${Stage}-ingest-queue"}


def test_subscribed_functions_read_the_bucket_without_referencing_it(
    template: dict[str, Any],
) -> None:
    # A !Ref / !GetAtt / ${JobsBucket} of the bucket in the policy of a function the bucket
    # notifies (here through its queue) or in the queue's policy is a circular dependency
    # (bucket -> queue policy -> bucket, bucket -> queue -> mapping -> function -> bucket).
    bucket_name = template["Resources"]["JobsBucket"]["Properties"]["BucketName"]
    notified_queues = {n["Queue"]["Fn::GetAtt"][0] for n in bucket_queue_notifications(template)}
    consumers = {
        name
        for name, function in functions_of(template).items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
        and event["Properties"]["Queue"]["Fn::GetAtt"][0] in notified_queues
    }
    assert consumers == {"IngestJobFunction"}
    queue_policy = template["Resources"]["IngestQueuePolicy"]["Properties"]
    for name, node_root in [
        *((f, functions_of(template)[f]["Properties"]["Policies"]) for f in consumers),
        ("IngestQueuePolicy", queue_policy),
    ]:
        for node in walk(node_root):
            if isinstance(node, dict):
                assert node.get("Ref") != "JobsBucket", name
                assert "JobsBucket" not in json.dumps(node.get("Fn::GetAtt", "")), name
                assert "${JobsBucket" not in json.dumps(node.get("Fn::Sub", "")), name
    policies = functions_of(template)["IngestJobFunction"]["Properties"]["Policies"]
    read = [p["S3ReadPolicy"] for p in policies if "S3ReadPolicy" in p]
    assert read == [{"BucketName": bucket_name}]


def _alarm_on(template: dict[str, Any], queue: str) -> dict[str, Any]:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    [watched] = [
        alarm["Properties"]
        for alarm in alarms
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        in alarm["Properties"]["Dimensions"]
    ]
    properties: dict[str, Any] = watched
    return properties


def test_failures_in_the_dlq_and_an_old_backlog_raise_alarms(template: dict[str, Any]) -> None:
    failures = _alarm_on(template, "IngestFailureQueue")
    assert failures["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert failures["Threshold"] == 1
    assert failures["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    backlog = _alarm_on(template, "IngestQueue")
    assert backlog["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert backlog["Threshold"] == {"Ref": "IngestBacklogAlarmSeconds"}
    assert backlog["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_queue_takes_the_optional_customer_managed_key(template: dict[str, Any]) -> None:
    assert template["Parameters"]["QueueKmsKeyArn"]["Default"] == ""
    assert template["Conditions"]["HasQueueKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "QueueKmsKeyArn"}, ""]}]
    }
    queues = resources_of(template, "AWS::SQS::Queue")
    assert queues
    for name, queue in queues.items():
        props = queue["Properties"]
        # Without a key: SQS-managed encryption. With one: that key, and not both (SQS refuses).
        assert props["SqsManagedSseEnabled"] == {"Fn::If": ["HasQueueKmsKey", NO_VALUE, True]}
        assert props["KmsMasterKeyId"] == {
            "Fn::If": ["HasQueueKmsKey", {"Ref": "QueueKmsKeyArn"}, NO_VALUE]
        }, name


def test_ingestion_may_read_its_queue_under_a_customer_managed_key(
    template: dict[str, Any],
) -> None:
    # The event source mapping receives messages as the function's role: from a queue under
    # a customer-managed key that needs Decrypt on that key, only then.
    policies = template["Resources"]["IngestJobFunction"]["Properties"]["Policies"]
    [conditional] = [p["Fn::If"] for p in policies if "Fn::If" in p]
    condition, with_key, without_key = conditional
    assert condition == "HasQueueKmsKey"
    assert without_key == NO_VALUE
    [statement] = with_key["Statement"]
    assert statement["Action"] == "kms:Decrypt"
    assert statement["Resource"] == {"Ref": "QueueKmsKeyArn"}


def test_every_log_group_takes_the_optional_customer_managed_key(template: dict[str, Any]) -> None:
    assert template["Parameters"]["LogsKmsKeyArn"]["Default"] == ""
    assert template["Conditions"]["HasLogsKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "LogsKmsKeyArn"}, ""]}]
    }
    log_groups = resources_of(template, "AWS::Logs::LogGroup")
    assert len(log_groups) == len(SPEC_FUNCTIONS) + 1  # one per function + the API's access log
    for name, log_group in log_groups.items():
        assert log_group["Properties"]["KmsKeyId"] == {
            "Fn::If": ["HasLogsKmsKey", {"Ref": "LogsKmsKeyArn"}, NO_VALUE]
        }, name


@pytest.mark.parametrize("parameter", ["LogsKmsKeyArn", "QueueKmsKeyArn"])
def test_a_kms_key_parameter_takes_a_key_arn_or_nothing(
    template: dict[str, Any], parameter: str
) -> None:
    pattern = re.compile(template["Parameters"][parameter]["AllowedPattern"])
    accepted = [
        "",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
    ]
    # Aliases cannot be named in the IAM statements that grant the key.
    refused = [
        "alias/flex",
        "arn:aws:kms:eu-west-1:123456789012:alias/flex",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
    ]
    assert all(pattern.fullmatch(value) for value in accepted)
    assert not any(pattern.fullmatch(value) for value in refused)


def test_the_jobs_bucket_records_who_changed_a_posting_unless_turned_off(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    parameter = template["Parameters"]["JobsBucketAccessLogs"]
    assert parameter["Default"] == "Enabled"
    assert sorted(parameter["AllowedValues"]) == ["Disabled", "Enabled"]
    condition = "HasJobsBucketAccessLogs"
    assert template["Conditions"][condition] == {
        "Fn::Equals": [{"Ref": "JobsBucketAccessLogs"}, "Enabled"]
    }
    logging_config = resources["JobsBucket"]["Properties"]["LoggingConfiguration"]["Fn::If"]
    assert logging_config[0] == condition
    assert logging_config[2] == NO_VALUE
    assert logging_config[1]["DestinationBucketName"] == {"Ref": "JobsAccessLogBucket"}
    prefix = logging_config[1]["LogFilePrefix"]

    log_bucket = resources["JobsAccessLogBucket"]
    assert log_bucket["Condition"] == condition
    assert log_bucket["DeletionPolicy"] == "Retain"  # audit records outlive the stack
    props = log_bucket["Properties"]
    # Server access logs are delivered only to buckets encrypted with SSE-S3.
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    [expiry] = props["LifecycleConfiguration"]["Rules"]
    assert expiry["ExpirationInDays"] == {"Ref": "JobsBucketAccessLogRetentionDays"}

    policy = resources["JobsAccessLogBucketPolicy"]
    assert policy["Condition"] == condition
    assert policy["Properties"]["Bucket"] == {"Ref": "JobsAccessLogBucket"}
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [delivery] = [s for s in statements if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Resource"] == {"Fn::Sub": f"${{JobsAccessLogBucket.Arn}}/{prefix}*"}
    assert delivery["Condition"] == {
        "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": ["JobsBucket", "Arn"]}},
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    }
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    output = template["Outputs"]["JobsAccessLogBucketName"]
    assert output["Condition"] == condition
    assert output["Value"] == {"Ref": "JobsAccessLogBucket"}


def test_every_checkov_suppression_names_a_check_and_says_why(template: dict[str, Any]) -> None:
    # `make scan` enforces it too; here it fails in the plain test run, before checkov runs.
    assert suppression_problems(template) == []


# --------------------------------------------------------------------------- migrations


def test_migrations_run_on_deploy_and_again_whenever_the_package_changes(
    template: dict[str, Any],
) -> None:
    migrate = template["Resources"]["MigrateFunction"]
    assert migrate["Properties"]["AutoPublishAlias"]
    assert migrate["Metadata"]["BuildMethod"] == "makefile"
    makefile = (REPO_ROOT / migrate["Properties"]["CodeUri"] / "Makefile").read_text()
    assert "build-MigrateFunction:" in makefile
    assert "migrations" in makefile

    [custom] = [
        r for r in template["Resources"].values() if r["Type"] == "Custom::DatabaseMigrations"
    ]
    props = custom["Properties"]
    # The token must not change between deploys (CloudFormation refuses to update it): the alias.
    assert props["ServiceToken"] == {"Ref": "MigrateFunction.Alias"}
    # A property that changes with every published version re-runs the migration.
    assert {"Ref": "MigrateFunction.Version"} in props.values()
    assert props["ServiceTimeout"] > migrate["Properties"]["Timeout"]


def test_new_code_goes_live_only_after_the_schema_is_migrated(template: dict[str, Any]) -> None:
    for name in ("IngestJobFunction", "SearchFunction", "InterviewResultsFunction"):
        assert template["Resources"][name]["DependsOn"] == "DatabaseMigrations"


def test_outputs_name_the_api_the_bucket_the_queues_and_the_ingest_function(
    template: dict[str, Any],
) -> None:
    outputs = template["Outputs"]
    assert "execute-api" in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["JobsBucketName"]["Value"] == {"Ref": "JobsBucket"}
    assert outputs["IngestFailureQueueUrl"]["Value"] == {"Ref": "IngestFailureQueue"}
    assert outputs["IngestQueueUrl"]["Value"] == {"Ref": "IngestQueue"}
    assert outputs["IngestFunctionName"]["Value"] == {"Ref": "IngestJobFunction"}


# --------------------------------------------------------------------------- samconfig


def test_samconfig_has_dev_and_prod_deploying_this_templates_parameters(
    template: dict[str, Any],
) -> None:
    samconfig = tomllib.loads(SAMCONFIG_PATH.read_text())
    required = {name for name, spec in template["Parameters"].items() if "Default" not in spec}
    stacks = set()
    for environment in ("dev", "prod"):
        deploy = samconfig[environment]["deploy"]["parameters"]
        stacks.add(deploy["stack_name"])
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        assert deploy["resolve_s3"] is True
        overrides = dict(
            re.findall(r'(\w+)="([^"]*)"', " ".join(deploy["parameter_overrides"]))
            if isinstance(deploy["parameter_overrides"], list)
            else re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"])
        )
        assert set(overrides) <= set(template["Parameters"]), environment
        assert required <= set(overrides), environment
        assert overrides["Stage"] == environment
        remote_invoke = samconfig[environment]["remote_invoke"]["parameters"]
        assert remote_invoke["stack_name"] == deploy["stack_name"]
    assert len(stacks) == 2
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


# --------------------------------------------------------------------------- sample events


def _sample_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted((REPO_ROOT / "events").glob("*.json")):
        event = json.loads(path.read_text(encoding="utf-8"))
        events.append({"file": path.name, **event} if isinstance(event, dict) else {})
    return events


def test_every_route_and_every_function_has_a_sample_event(template: dict[str, Any]) -> None:
    events = _sample_events()
    function_of_prefix = {f"{name}_": logical_id for logical_id, name in SPEC_FUNCTIONS.items()}
    api_samples = set()
    for event in events:
        if "httpMethod" not in event:
            continue
        shape = route_shape(event["httpMethod"], event["resource"])
        api_samples.add(shape)
        # A sample named for a function is a request that function's route serves.
        [owner] = [
            f for prefix, f in function_of_prefix.items() if event["file"].startswith(prefix)
        ]
        assert SPEC_ROUTES.get(shape) == owner, event["file"]
    assert set(SPEC_ROUTES) <= api_samples
    s3_keys = [
        record["s3"]["object"]["key"]
        for event in events
        for record in event.get("Records", [])
        if "s3" in record
    ]
    assert any("+" in key or "%" in key for key in s3_keys), "an S3 key that is URL-encoded"
    for name in SPEC_FUNCTIONS.values():
        assert any(e["file"].startswith(f"{name}_") for e in events), name


# --------------------------------------------------------------------------- 3 a.m.

ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}


def alarms_on(
    template: dict[str, Any], namespace: str, metric: str, dimension: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == namespace
        and alarm["Properties"]["MetricName"] == metric
        and dimension in alarm["Properties"]["Dimensions"]
    ]


def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_clears(
    template: dict[str, Any],
) -> None:
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 11
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == ALARM_ACTIONS, name
        assert alarm["Properties"]["OKActions"] == ALARM_ACTIONS, name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name


def test_the_api_alarms_on_any_5xx(template: dict[str, Any]) -> None:
    api_name = template["Resources"]["FlexApi"]["Properties"]["Name"]
    [alarm] = alarms_on(
        template, "AWS/ApiGateway", "5XXError", {"Name": "ApiName", "Value": api_name}
    )
    properties = alarm["Properties"]
    assert {"Name": "Stage", "Value": {"Ref": "Stage"}} in properties["Dimensions"]
    assert (properties["Statistic"], properties["Threshold"]) == ("Sum", 1)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_function_alarms_on_its_errors_and_throttles(template: dict[str, Any]) -> None:
    for name in functions_of(template):
        dimension = {"Name": "FunctionName", "Value": {"Ref": name}}
        [errors] = alarms_on(template, "AWS/Lambda", "Errors", dimension)
        [throttles] = alarms_on(template, "AWS/Lambda", "Throttles", dimension)
        for alarm in (errors, throttles):
            assert alarm["Properties"]["Statistic"] == "Sum", name
            assert alarm["Properties"]["Threshold"] == 1, name
        # Always there: the event source mapping bounds ingestion without throttling it, so a
        # throttle means the account's concurrency ran out.
        assert "Condition" not in throttles, name


def test_ingestions_backlog_is_watched_in_its_queue_not_in_lambdas_async_queue(
    template: dict[str, Any],
) -> None:
    # Nothing is invoked asynchronously: an AsyncEventAge alarm would never see an event.
    dimension = {"Name": "FunctionName", "Value": {"Ref": "IngestJobFunction"}}
    assert alarms_on(template, "AWS/Lambda", "AsyncEventAge", dimension) == []
    queue = {"Name": "QueueName", "Value": {"Fn::GetAtt": ["IngestQueue", "QueueName"]}}
    [alarm] = alarms_on(template, "AWS/SQS", "ApproximateAgeOfOldestMessage", queue)
    assert alarm["Properties"]["Statistic"] == "Maximum"
    # seconds, well inside the time a message is kept: hours left to act
    retention = template["Resources"]["IngestQueue"]["Properties"]["MessageRetentionPeriod"]
    default = template["Parameters"]["IngestBacklogAlarmSeconds"]["Default"]
    assert 0 < default <= retention / 3


def test_functions_that_serve_or_ingest_give_up_on_a_stalled_database_before_their_timeout(
    template: dict[str, Any],
) -> None:
    for name in ("SearchFunction", "InterviewResultsFunction", "IngestJobFunction"):
        function = template["Resources"][name]
        timeout = function_setting(template, function, "Timeout")
        socket_timeout = int(
            function["Properties"]["Environment"]["Variables"]["DB_SOCKET_TIMEOUT"]
        )
        # room for the error answer (API) or the failure log naming the record (ingestion)
        assert 0 < socket_timeout <= timeout / 2, name


def test_api_gateways_own_5xx_answers_have_the_error_shape_and_the_request_id(
    template: dict[str, Any],
) -> None:
    responses = template["Resources"]["FlexApi"]["Properties"]["GatewayResponses"]
    # 4xx stay API Gateway's own (403 Missing Authentication Token for an unknown route)
    assert set(responses) == {"DEFAULT_5XX"}
    body = responses["DEFAULT_5XX"]["ResponseTemplates"]["application/json"]
    # What API Gateway substitutes: messageString is the message as a quoted JSON string.
    rendered = body.replace(
        "$context.error.messageString", json.dumps('Internal "server" error')
    ).replace("$context.requestId", "c0ffee-1234")
    assert "$context" not in rendered
    assert json.loads(rendered) == {
        "error": {
            "code": "internal_error",
            "message": 'Internal "server" error',
            "request_id": "c0ffee-1234",
        }
    }
