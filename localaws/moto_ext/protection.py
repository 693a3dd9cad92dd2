"""Stack termination protection as AWS enforces it.

moto 5.2 stores `EnableTerminationProtection` from CreateStack but has no
UpdateTerminationProtection (HTTP 500) and deletes protected stacks anyway.
"""

from __future__ import annotations

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult


def apply() -> None:
    def update_termination_protection(self: CloudFormationResponse) -> ActionResult:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection", False)
        return ActionResult({"StackId": stack.stack_id})

    original_delete = CloudFormationResponse.delete_stack

    def delete_stack(self: CloudFormationResponse):  # type: ignore[no-untyped-def]
        name = self._get_param("StackName")
        try:
            stack = self.cloudformation_backend.get_stack(name)
        except ValidationError:
            return original_delete(self)
        if stack.status != "DELETE_COMPLETE" and stack.enable_termination_protection:
            raise ValidationError(
                message=f"Stack [{name}] cannot be deleted while TerminationProtection is enabled"
            )
        return original_delete(self)

    CloudFormationResponse.update_termination_protection = update_termination_protection  # type: ignore[attr-defined]
    CloudFormationResponse.delete_stack = delete_stack  # type: ignore[method-assign]
