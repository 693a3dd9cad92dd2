"""CloudFormation models for resource types moto's CloudFormation skips.

moto discovers models through `CloudFormationModel.__subclasses__()`, so each class
subclasses it directly. Each one drives moto's own backend, so what CloudFormation
creates is visible through the normal service APIs (GetStage, DescribeAlarms, ...).
Each model states only what differs: its `Cfn` entry (type, name property, attributes),
the fields it keeps, `create`, `delete`, and `update` where a change is not a plain
replacement; `_Simple` answers the rest of moto's questions.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any, ClassVar, NamedTuple

from moto.apigateway.models import apigateway_backends
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.secretsmanager.models import secretsmanager_backends
from moto.sns.models import sns_backends

from .cfn_props import as_bool, camel, id_of, tag_list, tags

Props = dict[str, Any]


class Cfn(NamedTuple):
    """What CloudFormation knows a model by."""

    type: str
    name_property: str = ""  # the property that names the resource; "" when none does
    attributes: dict[str, str] = {}  # each `Fn::GetAtt` name -> the instance attribute holding it


class _Simple:
    """Shared plumbing, mixed in *before* CloudFormationModel: moto only finds direct
    subclasses of CloudFormationModel, so this mixin must not derive from it.

    A model sets `cfn`, implements `create(name, props, ...)` and `delete(...)`, and
    annotates the fields it keeps besides its physical id (`cls(physical_id, field=...)`)."""

    cfn: ClassVar[Cfn]
    physical_resource_id: str

    def __init__(self, physical_id: str, **fields: Any):
        self.physical_resource_id = physical_id
        for field, value in fields.items():
            setattr(self, field, value)

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.cfn.type

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.cfn.name_property

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.cfn.attributes

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.cfn.attributes:
            raise UnformattedGetAttTemplateException()
        return getattr(self, self.cfn.attributes[attribute_name])

    def is_created(self) -> bool:
        return True

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> Any:
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str) -> None:
        raise NotImplementedError

    @classmethod
    def update(cls, original: Any, name: str, props: Props, account_id: str, region_name: str) -> Any:
        # Replacement semantics: create the new one first, as CloudFormation does. For
        # types whose create overwrites by name (PutMetricAlarm), the same name updates in place.
        new = cls.create(name, props, account_id, region_name)
        if new.physical_resource_id != original.physical_resource_id:
            original.delete(account_id, region_name)
        return new

    def replaced_by(self, name: str, props: Props, account_id: str, region_name: str) -> Any:
        """Creates the replacement first, then deletes this one, as CloudFormation does."""
        new = type(self).create(name, props, account_id, region_name)
        self.delete(account_id, region_name)
        return new

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        return cls.create(resource_name, cloudformation_json["Properties"], account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        return cls.update(original_resource, new_resource_name, cloudformation_json["Properties"], account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        raise NotImplementedError  # ResourceMap calls `delete()` on the instance first


def _of_rest_api(account_id: str, region_name: str, rest_api_id: str, part: str) -> dict[str, Any]:
    """One map of a REST API (`stages`, `gateway_responses`); empty once the API is gone,
    as it may be deleted before what belongs to it."""
    api = apigateway_backends[account_id][region_name].apis.get(rest_api_id)
    return getattr(api, part) if api is not None else {}


def _stage_method_settings(properties: Props) -> dict[str, Any]:
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
    cfn = Cfn("AWS::ApiGateway::Stage", name_property="StageName")

    def __init__(self, rest_api_id: str, name: str, account_id: str, region_name: str):
        self.rest_api_id = rest_api_id
        self.name = name
        self.account_id = account_id
        self.region_name = region_name

    @property
    def physical_resource_id(self) -> str:  # type: ignore[override]
        return self.name

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayStage:
        rest_api_id = id_of(props["RestApiId"])
        backend = apigateway_backends[account_id][region_name]
        backend.create_stage(
            rest_api_id,
            name,
            id_of(props.get("DeploymentId")),
            variables=props.get("Variables") or {},
            description=props.get("Description", ""),
            cacheClusterEnabled=as_bool(props.get("CacheClusterEnabled", False)),
            cacheClusterSize=props.get("CacheClusterSize"),
            tags=tags(props.get("Tags")) or None,
            tracing_enabled=as_bool(props.get("TracingEnabled", False)),
        )
        stage = cls(rest_api_id, name, account_id, region_name)
        stage._apply(props)
        return stage

    def _apply(self, props: Props) -> None:
        stage = apigateway_backends[self.account_id][self.region_name].get_stage(self.rest_api_id, self.name)
        stage.deployment_id = id_of(props.get("DeploymentId"))
        stage.description = props.get("Description", "")
        stage.variables = props.get("Variables") or {}
        stage.tracing_enabled = as_bool(props.get("TracingEnabled", False))
        stage.cache_cluster_enabled = as_bool(props.get("CacheClusterEnabled", False))
        stage.cache_cluster_size = str(props["CacheClusterSize"]) if stage.cache_cluster_enabled else None
        stage.cache_cluster_status = "AVAILABLE" if stage.cache_cluster_enabled else None
        stage.method_settings = _stage_method_settings(props)
        log = props.get("AccessLogSetting")
        stage.access_log_settings = (
            {"destinationArn": log.get("DestinationArn"), "format": log.get("Format")} if log else None
        )

    @classmethod
    def update(
        cls, original: ApiGatewayStage, name: str, props: Props, account_id: str, region_name: str
    ) -> ApiGatewayStage:
        if id_of(props["RestApiId"]) == original.rest_api_id and name == original.name:
            original._apply(props)
            return original
        return original.replaced_by(name, props, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        _of_rest_api(account_id, region_name, self.rest_api_id, "stages").pop(self.name, None)


class ApiGatewayUsagePlan(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::ApiGateway::UsagePlan", name_property="UsagePlanName", attributes={"Id": "physical_resource_id"})

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayUsagePlan:
        payload: dict[str, Any] = {"name": name, "description": props.get("Description")}
        stages = [
            {"apiId": id_of(s["ApiId"]), "stage": s["Stage"], **({"throttle": camel(s["Throttle"])} if "Throttle" in s else {})}
            for s in props.get("ApiStages") or []
        ]
        if stages:
            payload["apiStages"] = stages
        for key in ("Throttle", "Quota"):
            if key in props:
                payload[key.lower()] = camel(props[key])
        if props.get("Tags"):
            payload["tags"] = tags(props["Tags"])
        plan = apigateway_backends[account_id][region_name].create_usage_plan(payload)
        return cls(plan.id)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = apigateway_backends[account_id][region_name]
        backend.usage_plans.pop(self.physical_resource_id, None)
        backend.usage_plan_keys.pop(self.physical_resource_id, None)


class ApiGatewayApiKey(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::ApiGateway::ApiKey", name_property="Name", attributes={"APIKeyId": "physical_resource_id"})

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayApiKey:
        payload: dict[str, Any] = {
            "name": name,
            "description": props.get("Description"),
            "enabled": as_bool(props.get("Enabled", False)),
        }
        if props.get("Value"):
            payload["value"] = props["Value"]
        if props.get("StageKeys"):
            payload["stageKeys"] = [f"{id_of(k['RestApiId'])}/{k['StageName']}" for k in props["StageKeys"]]
        if props.get("Tags"):
            payload["tags"] = tags(props["Tags"])
        key = apigateway_backends[account_id][region_name].create_api_key(payload)
        return cls(key.id)

    def delete(self, account_id: str, region_name: str) -> None:
        apigateway_backends[account_id][region_name].keys.pop(self.physical_resource_id, None)


class ApiGatewayUsagePlanKey(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::ApiGateway::UsagePlanKey")

    plan_id: str

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayUsagePlanKey:
        plan_id = id_of(props["UsagePlanId"])
        key_id = id_of(props["KeyId"])
        apigateway_backends[account_id][region_name].create_usage_plan_key(
            plan_id, {"keyId": key_id, "keyType": props.get("KeyType", "API_KEY")}
        )
        return cls(key_id, plan_id=plan_id)

    @classmethod
    def update(
        cls, original: ApiGatewayUsagePlanKey, name: str, props: Props, account_id: str, region_name: str
    ) -> ApiGatewayUsagePlanKey:
        # Every property of a usage plan key forces replacement; the old one goes first, as
        # the same key may be added to the same plan again.
        original.delete(account_id, region_name)
        return cls.create(name, props, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        keys = apigateway_backends[account_id][region_name].usage_plan_keys.get(self.plan_id, {})
        keys.pop(self.physical_resource_id, None)


class ApiGatewayGatewayResponse(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::ApiGateway::GatewayResponse")

    rest_api_id: str
    response_type: str

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayGatewayResponse:
        rest_api_id, response_type = id_of(props["RestApiId"]), props["ResponseType"]
        apigateway_backends[account_id][region_name].put_gateway_response(
            rest_api_id,
            response_type,
            status_code=props.get("StatusCode"),
            response_parameters=props.get("ResponseParameters"),
            response_templates=props.get("ResponseTemplates"),
        )
        return cls(f"{rest_api_id}:{response_type}", rest_api_id=rest_api_id, response_type=response_type)

    def delete(self, account_id: str, region_name: str) -> None:
        _of_rest_api(account_id, region_name, self.rest_api_id, "gateway_responses").pop(self.response_type, None)


class CloudWatchAlarm(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::CloudWatch::Alarm", name_property="AlarmName", attributes={"Arn": "arn"})

    arn: str

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> CloudWatchAlarm:
        def number(key: str) -> Any:
            return float(props[key]) if key in props else None

        def integer(key: str) -> Any:
            return int(props[key]) if key in props else None

        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
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
            actions_enabled=as_bool(props.get("ActionsEnabled", True)),
            treat_missing_data=props.get("TreatMissingData"),
            tags=tag_list(props.get("Tags")),
        )
        return cls(name, arn=alarm.alarm_arn)

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self.physical_resource_id])


def _generate_secret_string(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if not as_bool(spec.get("ExcludePunctuation", False)):
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
    cfn = Cfn("AWS::SecretsManager::Secret", name_property="Name", attributes={"Id": "physical_resource_id"})

    name: str

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> SecretsManagerSecret:
        if "SecretString" in props:
            value = props["SecretString"]
        else:
            value = _generate_secret_string(props.get("GenerateSecretString") or {})
        backend = secretsmanager_backends[account_id][region_name]
        backend.create_secret(
            name=name,
            secret_string=value,
            secret_binary=None,
            description=props.get("Description"),
            tags=tag_list(props.get("Tags")),
            kms_key_id=props.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(backend.describe_secret(name).arn, name=name)

    @classmethod
    def update(
        cls, original: SecretsManagerSecret, name: str, props: Props, account_id: str, region_name: str
    ) -> SecretsManagerSecret:
        if name != original.name:
            return original.replaced_by(name, props, account_id, region_name)
        backend = secretsmanager_backends[account_id][region_name]
        secret = backend.describe_secret(original.name)
        secret.description = props.get("Description")
        if "SecretString" in props:
            backend.put_secret_value(
                secret_id=original.name,
                secret_string=props["SecretString"],
                secret_binary=None,
                client_request_token=None,
                version_stages=["AWSCURRENT"],
            )
        return original

    def delete(self, account_id: str, region_name: str) -> None:
        secretsmanager_backends[account_id][region_name].delete_secret(
            self.physical_resource_id, recovery_window_in_days=None, force_delete_without_recovery=True
        )


class SnsSubscription(_Simple, CloudFormationModel):
    cfn = Cfn("AWS::SNS::Subscription")

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> SnsSubscription:
        backend = sns_backends[account_id][region_name]
        subscription = backend.subscribe(props["TopicArn"], props["Endpoint"], props["Protocol"])
        return cls(subscription.arn)

    def delete(self, account_id: str, region_name: str) -> None:
        sns_backends[account_id][region_name].unsubscribe(self.physical_resource_id)


class ApiGatewayAccount(_Simple, CloudFormationModel):
    """The region's API Gateway account settings: the CloudWatch Logs role that access and
    execution logging need. Deleting the resource leaves the setting, as in AWS."""

    cfn = Cfn("AWS::ApiGateway::Account")

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> ApiGatewayAccount:
        role_arn = props.get("CloudWatchRoleArn")
        if role_arn:
            apigateway_backends[account_id][region_name].update_account(
                [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
        return cls(f"{account_id}-{region_name}-apigateway-account")

    def delete(self, account_id: str, region_name: str) -> None:
        pass


class SnsTopicPolicy(_Simple, CloudFormationModel):
    """Sets the policy of each listed topic; deleting it restores the default policy."""

    cfn = Cfn("AWS::SNS::TopicPolicy")

    topic_arns: list[str]

    @classmethod
    def create(cls, name: str, props: Props, account_id: str, region_name: str) -> SnsTopicPolicy:
        document = props["PolicyDocument"]
        if not isinstance(document, str):
            document = json.dumps(document)
        backend = sns_backends[account_id][region_name]
        topics = list(props.get("Topics") or [])
        for arn in topics:
            backend.set_topic_attribute(arn, "policy", document)
        return cls(name, topic_arns=topics)

    @classmethod
    def update(
        cls, original: SnsTopicPolicy, name: str, props: Props, account_id: str, region_name: str
    ) -> SnsTopicPolicy:
        # The physical id stays; topics no longer listed get their default policy back.
        new = cls.create(original.physical_resource_id, props, account_id, region_name)
        original.topic_arns = [t for t in original.topic_arns if t not in new.topic_arns]
        original.delete(account_id, region_name)
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
