"""Read ``template.yaml`` the way the local runner needs it: functions (code, handler, layers,
environment), the layer, the API routes and the S3 buckets with their notification events
(straight to a function, or to an SQS queue a function's event source mapping reads).

CloudFormation's short tags (``!Ref``, ``!Sub``, ``!GetAtt``, ``!If`` ...) are loaded as their
long forms and resolved against local values (parameter defaults, a fixed account and region);
what cannot be known locally (another resource's ARN, say) becomes a readable placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_STACK_NAME = "flex-local"

_SHORT_TAGS = (
    "Ref",
    "Condition",
    "Fn::Sub",
    "Fn::GetAtt",
    "Fn::If",
    "Fn::Equals",
    "Fn::Not",
    "Fn::And",
    "Fn::Or",
    "Fn::Join",
    "Fn::Select",
    "Fn::Split",
    "Fn::FindInMap",
    "Fn::ImportValue",
    "Fn::Base64",
    "Fn::GetAZs",
    "Fn::Cidr",
    "Fn::Transform",
)


class TemplateError(ValueError):
    """template.yaml is missing, unreadable or lacks something the runner needs."""


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A safe YAML loader that understands CloudFormation's short-form intrinsic functions."""


def _construct_intrinsic(name: str) -> Any:
    def construct(loader: _CfnLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _long in _SHORT_TAGS:
    _short = "!" + (_long[4:] if _long.startswith("Fn::") else _long)
    _CfnLoader.add_constructor(_short, _construct_intrinsic(_long))


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    except FileNotFoundError:
        raise TemplateError(f"{path} does not exist") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _Resolver:
    """Evaluates intrinsic functions with local values."""

    def __init__(self, document: Mapping[str, Any], parameter_overrides: Mapping[str, str]):
        self.resources: Mapping[str, Any] = document.get("Resources") or {}
        self.mappings: Mapping[str, Any] = document.get("Mappings") or {}
        self.conditions_source: Mapping[str, Any] = document.get("Conditions") or {}
        self.parameters: dict[str, Any] = {}
        for name, spec in (document.get("Parameters") or {}).items():
            default = (spec or {}).get("Default")
            self.parameters[name] = default
        self.parameters.update(parameter_overrides)
        self.pseudo: dict[str, Any] = {
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::Region": LOCAL_REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": LOCAL_STACK_NAME,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:stack/"
                f"{LOCAL_STACK_NAME}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}
        # Resources whose !Ref is their physical name (filled in by the caller).
        self.physical_names: dict[str, str] = {}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            return f"<parameter {name}>" if value is None else value
        if name in self.physical_names:
            return self.physical_names[name]
        if name in self.resources:
            return name
        return f"<unresolved {name}>"

    def get_att(self, resource: str, attribute: str) -> Any:
        kind = (self.resources.get(resource) or {}).get("Type", "")
        if attribute == "Arn" and kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.ref(resource)}"
        if attribute == "QueueName" and kind == "AWS::SQS::Queue":
            name = ((self.resources[resource] or {}).get("Properties") or {}).get("QueueName")
            return str(self.resolve(name)) if name else resource
        return f"<{resource}.{attribute}>"

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.conditions_source.get(name, False)))
        return self._conditions[name]

    def substitute(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, template).replace("${!", "${")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref":
                return self.ref(str(argument))
            if name == "Condition":
                return self.condition(str(argument))
            if name == "Fn::Sub":
                if isinstance(argument, list):
                    return self.substitute(str(argument[0]), argument[1] if argument[1:] else {})
                return self.substitute(str(argument), {})
            if name == "Fn::GetAtt":
                parts = argument if isinstance(argument, list) else str(argument).split(".", 1)
                return self.get_att(str(parts[0]), str(parts[1]))
            if name == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            if name == "Fn::Equals":
                left, right = (self.resolve(v) for v in argument)
                return str(left) == str(right)
            if name == "Fn::Not":
                return not self.resolve(argument[0])
            if name == "Fn::And":
                return all(self.resolve(v) for v in argument)
            if name == "Fn::Or":
                return any(self.resolve(v) for v in argument)
            if name == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(v) for v in self.resolve(items))
            if name == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                separator, source = argument
                return str(self.resolve(source)).split(str(separator))
            if name == "Fn::FindInMap":
                map_name, top, second = (self.resolve(v) for v in argument[:3])
                return self.mappings[map_name][top][second]
            if name.startswith("Fn::"):
                return f"<{name} unresolved locally>"
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}


@dataclass(frozen=True)
class ApiRoute:
    function: str
    path: str
    method: str  # upper case, or "ANY"
    event_name: str
    api: str | None


@dataclass(frozen=True)
class S3Subscription:
    function: str
    bucket_resource: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""
    event_name: str = ""
    queue_name: str | None = None
    """Set when the notifications reach the function through this SQS queue (the function
    then gets the event source mapping's batch, each message one notification)."""

    def matches(self, event_name: str, key: str) -> bool:
        """``event_name`` like ``ObjectCreated:Put``; subscriptions like ``s3:ObjectCreated:*``."""
        if not (key.startswith(self.prefix) and key.endswith(self.suffix)):
            return False
        full = f"s3:{event_name}"
        for pattern in self.events:
            if pattern == full or (pattern.endswith(":*") and full.startswith(pattern[:-1])):
                return True
        return False


@dataclass(frozen=True)
class Bucket:
    logical_id: str
    name: str
    versioned: bool


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_dir: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]
    layer_dirs: tuple[Path, ...]
    function_name: str

    @property
    def module_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class Template:
    path: Path
    functions: dict[str, Function] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    routes: list[ApiRoute] = field(default_factory=list)
    subscriptions: list[S3Subscription] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)
    gateway_responses: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per API: response type (``DEFAULT_5XX``, ...) -> its ``application/json`` template."""

    def function(self, name: str) -> Function:
        """A function by logical id (``SearchFunction``) or by code directory (``search``)."""
        if name in self.functions:
            return self.functions[name]
        for function in self.functions.values():
            if function.code_dir.name == name or function.function_name == name:
                return function
        known = ", ".join(sorted(self.functions))
        raise TemplateError(f"no function {name!r} in {self.path.name} (functions: {known})")

    def stage_of(self, route: ApiRoute) -> str:
        return self.stages.get(route.api or "", "Prod")


def _string_env(variables: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif value is not None:
            out[name] = str(value)
    return out


def _layer_dir(root: Path, content_uri: str) -> Path:
    directory = (root / content_uri).resolve()
    # A layer laid out for the runtime (python/<package>) or for BuildMethod (<package>).
    return directory / "python" if (directory / "python").is_dir() else directory


def load_template(path: Path, parameter_overrides: Mapping[str, str] | None = None) -> Template:
    """Parse ``path`` into the runner's view of it."""
    document = load_yaml(path)
    root = path.resolve().parent
    resolver = _Resolver(document, parameter_overrides or {})
    resources: Mapping[str, Any] = document["Resources"]

    template = Template(path=path)
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") == "AWS::S3::Bucket":
            properties = resource.get("Properties") or {}
            raw_name = properties.get("BucketName")
            name = str(resolver.resolve(raw_name)) if raw_name else logical_id.lower()
            resolver.physical_names[logical_id] = name
            versioning = resolver.resolve(properties.get("VersioningConfiguration") or {})
            template.buckets[logical_id] = Bucket(
                logical_id, name, (versioning or {}).get("Status") == "Enabled"
            )

    layers: dict[str, Path] = {}
    for logical_id, resource in resources.items():
        kind = (resource or {}).get("Type")
        properties = (resource or {}).get("Properties") or {}
        if kind == "AWS::Serverless::LayerVersion":
            layers[logical_id] = _layer_dir(root, str(properties.get("ContentUri", ".")))
        elif kind == "AWS::Lambda::LayerVersion":
            content = properties.get("Content")
            if isinstance(content, str):
                layers[logical_id] = _layer_dir(root, content)
        elif kind == "AWS::Serverless::Api":
            template.stages[logical_id] = str(resolver.resolve(properties.get("StageName", "")))
            responses = resolver.resolve(properties.get("GatewayResponses") or {})
            template.gateway_responses[logical_id] = {
                str(kind): str(templates["application/json"])
                for kind, response in responses.items()
                if "application/json"
                in (templates := (response or {}).get("ResponseTemplates") or {})
            }

    globals_function: Mapping[str, Any] = (document.get("Globals") or {}).get("Function") or {}
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") != "AWS::Serverless::Function":
            continue
        function_properties: Mapping[str, Any] = resource.get("Properties") or {}
        properties = function_properties

        def prop(
            name: str, default: Any = None, _p: Mapping[str, Any] = function_properties
        ) -> Any:
            return resolver.resolve(_p.get(name, globals_function.get(name, default)))

        code_uri = prop("CodeUri")
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: CodeUri must be a local directory")
        environment = _string_env(
            resolver.resolve((globals_function.get("Environment") or {}).get("Variables") or {})
        )
        environment.update(
            _string_env(
                resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
            )
        )
        layer_refs = properties.get("Layers", globals_function.get("Layers")) or []
        layer_dirs = []
        for layer in layer_refs:
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            if layer_id in layers:
                layer_dirs.append(layers[layer_id])
        function_name = prop("FunctionName") or logical_id
        template.functions[logical_id] = Function(
            logical_id=logical_id,
            code_dir=(root / code_uri).resolve(),
            handler=str(prop("Handler", "app.lambda_handler")),
            timeout_seconds=int(prop("Timeout", 3)),
            memory_mb=int(prop("MemorySize", 128)),
            environment=environment,
            layer_dirs=tuple(layer_dirs),
            function_name=str(function_name),
        )

        for event_name, event in (properties.get("Events") or {}).items():
            event_properties = (event or {}).get("Properties") or {}
            if event.get("Type") == "Api":
                api_ref = event_properties.get("RestApiId")
                api = api_ref.get("Ref") if isinstance(api_ref, dict) else None
                template.routes.append(
                    ApiRoute(
                        function=logical_id,
                        path=str(resolver.resolve(event_properties["Path"])),
                        method=str(resolver.resolve(event_properties["Method"])).upper(),
                        event_name=event_name,
                        api=api,
                    )
                )
            elif event.get("Type") == "S3":
                bucket_ref = event_properties.get("Bucket")
                bucket = bucket_ref.get("Ref") if isinstance(bucket_ref, dict) else None
                if bucket not in template.buckets:
                    raise TemplateError(
                        f"{logical_id}.{event_name}: Bucket must !Ref a bucket of the template"
                    )
                events = resolver.resolve(event_properties.get("Events"))
                rules = resolver.resolve(
                    ((event_properties.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
                )
                filters = {str(rule["Name"]).lower(): str(rule["Value"]) for rule in rules}
                template.subscriptions.append(
                    S3Subscription(
                        function=logical_id,
                        bucket_resource=bucket,
                        events=tuple([events] if isinstance(events, str) else events),
                        prefix=filters.get("prefix", ""),
                        suffix=filters.get("suffix", ""),
                        event_name=event_name,
                    )
                )
    template.subscriptions.extend(_queued_subscriptions(resources, resolver, template))
    return template


def _queue_of(reference: Any) -> str | None:
    """The logical id in ``!GetAtt Queue.Arn`` / ``!Ref Queue``."""
    if isinstance(reference, dict):
        if "Fn::GetAtt" in reference:
            return str(reference["Fn::GetAtt"][0])
        if "Ref" in reference:
            return str(reference["Ref"])
    return None


def _queued_subscriptions(
    resources: Mapping[str, Any], resolver: _Resolver, template: Template
) -> list[S3Subscription]:
    """Bucket -> SQS queue -> function: one subscription per function, queue and key filter
    (the bucket's ObjectCreated and ObjectRemoved configurations merged)."""
    consumers: dict[str, list[tuple[str, str]]] = {}  # queue -> [(function, event name)]
    for logical_id, resource in resources.items():
        if (resource or {}).get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if (event or {}).get("Type") == "SQS":
                queue = _queue_of((event.get("Properties") or {}).get("Queue"))
                if queue is not None:
                    consumers.setdefault(queue, []).append((logical_id, event_name))
    subscriptions: dict[tuple[str, ...], S3Subscription] = {}
    for bucket_id in template.buckets:
        properties = (resources[bucket_id] or {}).get("Properties") or {}
        notifications = (properties.get("NotificationConfiguration") or {}).get(
            "QueueConfigurations"
        ) or []
        for configuration in notifications:
            queue = _queue_of(configuration.get("Queue"))
            if queue is None:
                continue
            rules = resolver.resolve(
                ((configuration.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            )
            filters = {str(rule["Name"]).lower(): str(rule["Value"]) for rule in rules}
            event = str(resolver.resolve(configuration["Event"]))
            for function, event_name in consumers.get(queue, []):
                key = (
                    function,
                    bucket_id,
                    queue,
                    filters.get("prefix", ""),
                    filters.get("suffix", ""),
                )
                known = subscriptions.get(key)
                subscriptions[key] = S3Subscription(
                    function=function,
                    bucket_resource=bucket_id,
                    events=(*known.events, event) if known else (event,),
                    prefix=key[3],
                    suffix=key[4],
                    event_name=event_name,
                    queue_name=str(resolver.get_att(queue, "QueueName")),
                )
    return list(subscriptions.values())
