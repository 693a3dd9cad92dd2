"""The project's extension to moto's CloudFormation.

moto 5.2 silently skips several resource types our template uses, drops properties
(Lambda `Architectures` and `TracingConfig`, integration `ResponseTransferMode`, ...),
mishandles conditions (`AWS::NoValue` in lists, short-form `!Condition`, condition flips
on update), updates only resources whose template text changed, accepts any parameter
value, and computes no stack outputs after a change set executes. This package closes
those gaps with moto's own service backends, so a stack deployed and updated through
change sets in the local emulator looks like one in AWS. docs/local-aws.md lists them.

An UPDATE executed with a RollbackConfiguration keeps its monitoring window, can be
cancelled or rolled back by a trigger alarm during it, and writes per-resource events
(`guarded_updates`). What stays unfaithful (test these with SDK mocks, not the
emulator): outside such a window CloudFormation never rolls back (a failed resource is
an error, not a rollback), records only stack-level events, and applies every change
synchronously; a rollback is never made to fail; API Gateway does not invoke the Lambda function,
and its deployments are not snapshots of the routes.

CloudWatch also answers the Smithy RPC v2 CBOR protocol current SDKs speak
(`cloudwatch_cbor`), from the same backend.

`install()` must run before moto first builds its model map (its `get_model_list()` is
cached): the launcher in `localaws.server` calls it before serving.
"""

from . import bedrock_runtime, cloudwatch_cbor, guarded_updates, models, patches, protection

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    # Importing `models` defined the CloudFormationModel subclasses; make sure moto's
    # cached model map sees them even if something built it already.
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    patches.apply()
    protection.apply()
    cloudwatch_cbor.apply()
    bedrock_runtime.apply()
    guarded_updates.apply()  # last: it wraps what the others patched
    _installed = True


__all__ = ["install", "models"]
