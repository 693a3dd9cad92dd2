"""CloudFormation models for resource types moto's CloudFormation skips.

moto discovers models through `CloudFormationModel.__subclasses__()`, so each class
subclasses it directly. Each one drives moto's own backend, so what CloudFormation
creates is visible through the normal service APIs (GetStage, DescribeAlarms, ...).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from moto.apigateway.models import apigateway_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.secretsmanager.models import secretsmanager_backends
from moto.sns.models import sns_backends


def _camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys -> the API's camelCase payload keys."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _id_of(value: Any) -> str:
    # moto's own Deployment model has no physical id, so `Ref` may hand us the object.
    return getattr(value, "id", value)


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {t["Key"]: t["Value"] for t in value or []}


class _Simple:
    """Shared plumbing, mixed in *before* CloudFormationModel: moto only finds direct
    subclasses of CloudFormationModel, so this mixin must not derive from it."""

    physical_resource_id: str

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def is_created(self) -> bool:
        return True

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        # Replacement semantics: create the new one first, as CloudFormation does. For
        # types whose create overwrites by name (PutMetricAlarm), the same name updates in place.
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        if new.physical_resource_id != original_resource.physical_resource_id:
            original_resource.delete(account_id, region_name)
        return new

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        raise NotImplementedError  # ResourceMap calls `delete()` on the instance first


def _stage_method_settings(properties: dict[str, Any]) -> dict[str, Any]:
    """Stage MethodSettings in the shape GetStage returns (`{"*/*": {...}}`)."""
    names = {
        "ThrottlingRateLimit": "throttlingRateLimit",
        "ThrottlingBurstLimit": "throttlingBurstLimit",
        "LoggingLevel": "loggingLevel",
        "MetricsEnabled": "metricsEnabled",
        "DataTraceEnabled": "dataTraceEnabled",
        "CachingEnabled": "cachingEnabled",
        "CacheTtlInSeconds": "cacheTtlInSeconds",
        "CacheDataEncrypted": "cacheDataEncrypted",
    }
    settings: dict[str, Any] = {}
    for setting in properties.get("MethodSettings") or []:
        path = setting.get("ResourcePath", "/*")
        key = f"{path.lstrip('/').replace('/', '~1') or '*'}/{setting.get('HttpMethod', '*')}"
        settings[key] = {api: setting[cfn] for cfn, api in names.items() if cfn in setting}
    return settings


class ApiGatewayStage(_Simple, CloudFormationModel):
    def __init__(self, rest_api_id: str, name: str, account_id: str, region_name: str):
        self.rest_api_id = rest_api_id
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "StageName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayStage:
        props = cloudformation_json["Properties"]
        rest_api_id = _id_of(props["RestApiId"])
        backend = apigateway_backends[account_id][region_name]
        backend.create_stage(
            rest_api_id,
            resource_name,
            _id_of(props.get("DeploymentId")),
            variables=props.get("Variables") or {},
            description=props.get("Description", ""),
            cacheClusterEnabled=_bool(props.get("CacheClusterEnabled", False)),
            cacheClusterSize=props.get("CacheClusterSize"),
            tags=_tags(props.get("Tags")) or None,
            tracing_enabled=_bool(props.get("TracingEnabled", False)),
        )
        stage = cls(rest_api_id, resource_name, account_id, region_name)
        stage._apply(props)
        return stage

    def _apply(self, props: dict[str, Any]) -> None:
        stage = apigateway_backends[self.account_id][self.region_name].get_stage(self.rest_api_id, self.name)
        stage.deployment_id = _id_of(props.get("DeploymentId"))
        stage.description = props.get("Description", "")
        stage.variables = props.get("Variables") or {}
        stage.tracing_enabled = _bool(props.get("TracingEnabled", False))
        stage.cache_cluster_enabled = _bool(props.get("CacheClusterEnabled", False))
        stage.cache_cluster_size = str(props["CacheClusterSize"]) if stage.cache_cluster_enabled else None
        stage.cache_cluster_status = "AVAILABLE" if stage.cache_cluster_enabled else None
        stage.method_settings = _stage_method_settings(props)
        log = props.get("AccessLogSetting")
        stage.access_log_settings = (
            {"destinationArn": log.get("DestinationArn"), "format": log.get("Format")} if log else None
        )

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: ApiGatewayStage,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayStage:
        props = cloudformation_json["Properties"]
        same_api = _id_of(props["RestApiId"]) == original_resource.rest_api_id
        if same_api and new_resource_name == original_resource.name:
            original_resource._apply(props)
            return original_resource
        new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
        original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigateway_backends[account_id][region_name]
        api = backend.apis.get(self.rest_api_id)
        if api is not None:
            api.stages.pop(self.name, None)


class ApiGatewayUsagePlan(_Simple, CloudFormationModel):
    def __init__(self, plan_id: str):
        self.physical_resource_id = plan_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return "UsagePlanName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlan"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.physical_resource_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayUsagePlan:
        props = cloudformation_json["Properties"]
        payload: dict[str, Any] = {"name": resource_name, "description": props.get("Description")}
        stages = [
            {"apiId": _id_of(s["ApiId"]), "stage": s["Stage"], **({"throttle": _camel(s["Throttle"])} if "Throttle" in s else {})}
            for s in props.get("ApiStages") or []
        ]
        if stages:
            payload["apiStages"] = stages
        for key in ("Throttle", "Quota"):
            if key in props:
                payload[key.lower()] = _camel(props[key])
        if props.get("Tags"):
            payload["tags"] = _tags(props["Tags"])
        plan = apigateway_backends[account_id][region_name].create_usage_plan(payload)
        return cls(plan.id)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigateway_backends[account_id][region_name]
        backend.usage_plans.pop(self.physical_resource_id, None)
        backend.usage_plan_keys.pop(self.physical_resource_id, None)


class ApiGatewayApiKey(_Simple, CloudFormationModel):
    def __init__(self, key_id: str):
        self.physical_resource_id = key_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::ApiKey"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "APIKeyId"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.physical_resource_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayApiKey:
        props = cloudformation_json["Properties"]
        payload: dict[str, Any] = {
            "name": resource_name,
            "description": props.get("Description"),
            "enabled": _bool(props.get("Enabled", False)),
        }
        if props.get("Value"):
            payload["value"] = props["Value"]
        if props.get("StageKeys"):
            payload["stageKeys"] = [
                f"{_id_of(k['RestApiId'])}/{k['StageName']}" for k in props["StageKeys"]
            ]
        if props.get("Tags"):
            payload["tags"] = _tags(props["Tags"])
        key = apigateway_backends[account_id][region_name].create_api_key(payload)
        return cls(key.id)

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].keys.pop(self.physical_resource_id, None)


class ApiGatewayUsagePlanKey(_Simple, CloudFormationModel):
    def __init__(self, plan_id: str, key_id: str):
        self.plan_id = plan_id
        self.physical_resource_id = key_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlanKey"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayUsagePlanKey:
        props = cloudformation_json["Properties"]
        plan_id = _id_of(props["UsagePlanId"])
        key_id = _id_of(props["KeyId"])
        apigateway_backends[account_id][region_name].create_usage_plan_key(
            plan_id, {"keyId": key_id, "keyType": props.get("KeyType", "API_KEY")}
        )
        return cls(plan_id, key_id)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: ApiGatewayUsagePlanKey,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> ApiGatewayUsagePlanKey:
        # Every property of a usage plan key forces replacement.
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        keys = apigateway_backends[account_id][region_name].usage_plan_keys.get(self.plan_id, {})
        keys.pop(self.physical_resource_id, None)


class ApiGatewayGatewayResponse(_Simple, CloudFormationModel):
    def __init__(self, rest_api_id: str, response_type: str):
        self.rest_api_id = rest_api_id
        self.response_type = response_type
        self.physical_resource_id = f"{rest_api_id}:{response_type}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::GatewayResponse"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayGatewayResponse:
        props = cloudformation_json["Properties"]
        rest_api_id = _id_of(props["RestApiId"])
        apigateway_backends[account_id][region_name].put_gateway_response(
            rest_api_id,
            props["ResponseType"],
            status_code=props.get("StatusCode"),
            response_parameters=props.get("ResponseParameters"),
            response_templates=props.get("ResponseTemplates"),
        )
        return cls(rest_api_id, props["ResponseType"])

    def delete(self, account_id: str, region_name: str) -> None:
        api = apigateway_backends[account_id][region_name].apis.get(self.rest_api_id)
        if api is not None:
            api.gateway_responses.pop(self.response_type, None)


class CloudWatchAlarm(_Simple, CloudFormationModel):
    def __init__(self, name: str, arn: str):
        self.physical_resource_id = name
        self.arn = arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.arn

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> CloudWatchAlarm:
        props = cloudformation_json["Properties"]

        def number(key: str) -> Any:
            return float(props[key]) if key in props else None

        def integer(key: str) -> Any:
            return int(props[key]) if key in props else None

        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=integer("EvaluationPeriods"),
            period=integer("Period"),
            threshold=number("Threshold"),
            statistic=props.get("Statistic"),
            extended_statistic=props.get("ExtendedStatistic"),
            description=props.get("AlarmDescription"),
            dimensions=props.get("Dimensions") or [],
            alarm_actions=props.get("AlarmActions") or [],
            ok_actions=props.get("OKActions") or [],
            insufficient_data_actions=props.get("InsufficientDataActions") or [],
            datapoints_to_alarm=integer("DatapointsToAlarm"),
            unit=props.get("Unit"),
            actions_enabled=_bool(props.get("ActionsEnabled", True)),
            treat_missing_data=props.get("TreatMissingData"),
            tags=[{"Key": k, "Value": v} for k, v in _tags(props.get("Tags")).items()],
        )
        return cls(resource_name, alarm.alarm_arn)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_resource_id])


def _generate_secret_string(spec: dict[str, Any]) -> str:
    import json

    alphabet = string.ascii_letters + string.digits
    if not _bool(spec.get("ExcludePunctuation", False)):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = spec.get("ExcludeCharacters", "")
    alphabet = "".join(c for c in alphabet if c not in excluded)
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    if "SecretStringTemplate" in spec and "GenerateStringKey" in spec:
        doc = json.loads(spec["SecretStringTemplate"])
        doc[spec["GenerateStringKey"]] = value
        return json.dumps(doc)
    return value


class SecretsManagerSecret(_Simple, CloudFormationModel):
    def __init__(self, arn: str, name: str):
        self.physical_resource_id = arn
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.physical_resource_id

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> SecretsManagerSecret:
        props = cloudformation_json["Properties"]
        if "SecretString" in props:
            value = props["SecretString"]
        else:
            value = _generate_secret_string(props.get("GenerateSecretString") or {})
        backend = secretsmanager_backends[account_id][region_name]
        backend.create_secret(
            name=resource_name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=[{"Key": k, "Value": v} for k, v in _tags(props.get("Tags")).items()],
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(backend.describe_secret(resource_name).arn, resource_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: SecretsManagerSecret,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SecretsManagerSecret:
        if new_resource_name != original_resource.name:
            new = cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)
            original_resource.delete(account_id, region_name)
            return new
        props = cloudformation_json["Properties"]
        backend = secretsmanager_backends[account_id][region_name]
        secret = backend.describe_secret(original_resource.name)
        secret.description = props.get("Description")
        if "SecretString" in props:
            backend.put_secret_value(
                secret_id=original_resource.name,
                secret_string=props["SecretString"],
                secret_binary=None,
                client_request_token=None,
                version_stages=["AWSCURRENT"],
            )
        return original_resource

    def delete(self, account_id: str, region_name: str) -> None:
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.physical_resource_id, recovery_window_in_days=None, force_delete_without_recovery=True
        )


class SnsSubscription(_Simple, CloudFormationModel):
    def __init__(self, arn: str):
        self.physical_resource_id = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::Subscription"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> SnsSubscription:
        props = cloudformation_json["Properties"]
        backend = sns_backends[account_id][region_name]
        subscription = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        return cls(subscription.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        sns_backends[account_id][region_name].unsubscribe(self.physical_resource_id)


class ApiGatewayAccount(_Simple, CloudFormationModel):
    """The region's API Gateway account settings: the CloudWatch Logs role that access and
    execution logging need. Deleting the resource leaves the setting, as in AWS."""

    def __init__(self, physical_id: str):
        self.physical_resource_id = physical_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Account"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> ApiGatewayAccount:
        role_arn = cloudformation_json["Properties"].get("CloudWatchRoleArn")
        if role_arn:
            apigateway_backends[account_id][region_name].update_account(
                [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
        return cls(f"{account_id}-{region_name}-apigateway-account")

    def delete(self, account_id: str, region_name: str) -> None:
        pass


class SnsTopicPolicy(_Simple, CloudFormationModel):
    """Sets the policy of each listed topic; deleting it restores the default policy."""

    def __init__(self, physical_id: str, topic_arns: list[str]):
        self.physical_resource_id = physical_id
        self.topic_arns = topic_arns

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SNS::TopicPolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> SnsTopicPolicy:
        import json

        props = cloudformation_json["Properties"]
        document = props["PolicyDocument"]
        if not isinstance(document, str):
            document = json.dumps(document)
        backend = sns_backends[account_id][region_name]
        topics = list(props.get("Topics") or [])
        for arn in topics:
            backend.set_topic_attribute(arn, "policy", document)
        return cls(resource_name, topics)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: SnsTopicPolicy,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> SnsTopicPolicy:
        new = cls.create_from_cloudformation_json(
            original_resource.physical_resource_id, cloudformation_json, account_id, region_name
        )
        original_resource.topic_arns = [t for t in original_resource.topic_arns if t not in new.topic_arns]
        original_resource.delete(account_id, region_name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        backend = sns_backends[account_id][region_name]
        for arn in self.topic_arns:
            topic = backend.topics.get(arn)
            if topic is not None:
                topic._policy_json = topic._create_default_topic_policy(region_name, account_id, topic.name)


MODELS = [
    ApiGatewayStage,
    ApiGatewayUsagePlan,
    ApiGatewayApiKey,
    ApiGatewayUsagePlanKey,
    ApiGatewayGatewayResponse,
    CloudWatchAlarm,
    SecretsManagerSecret,
    SnsSubscription,
    ApiGatewayAccount,
    SnsTopicPolicy,
]
