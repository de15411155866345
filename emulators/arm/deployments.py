"""Template deployments at resource-group scope: submission, deterministic progress, cancellation, operations.

No background thread: a deployment runs until its deadline, and whichever request arrives after the
deadline applies it (`advance`), so tests see the same sequence every time.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulators.arm.errors import ArmError, ResourceFailure, TemplateError, not_found
from emulators.arm.resource_ids import id_key, parse_resource_id, resource_group_scope
from emulators.arm.resource_providers import ResourceProviders
from emulators.arm.store import ArmStore, Subscription
from emulators.arm.template_engine import (
    DeploymentContext,
    PlannedResource,
    TemplateEvaluator,
    check_expressions,
)

DEPLOYMENT_TYPE = "Microsoft.Resources/deployments"
TERMINAL_STATES = {"Succeeded", "Failed", "Canceled"}
DEPLOYMENT_FAILED_MESSAGE = (
    "At least one resource deployment operation failed. Please list deployment operations for details. "
    "Please see https://aka.ms/arm-deployment-operations for usage details."
)


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


@dataclass
class DurationRule:
    """How long deployments take: for a subscription and/or a deployment name, optionally for `count` calls."""

    seconds: float
    subscription_id: str | None = None
    deployment_name: str | None = None
    count: int | None = None

    def matches(self, subscription_id: str, deployment_name: str) -> bool:
        """True when the rule applies to this submission."""
        if self.count is not None and self.count <= 0:
            return False
        if self.subscription_id and self.subscription_id.lower() != subscription_id.lower():
            return False
        return not (self.deployment_name and self.deployment_name.lower() != deployment_name.lower())


@dataclass
class Deployment:
    """One deployment resource and its current run."""

    id: str
    name: str
    subscription_id: str
    resource_group: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    mode: str
    content_hash: str
    caller_app: str | None
    correlation_id: str
    run_id: str
    submitted_at: float
    deadline: float
    state: str = "Running"
    finished_at: float | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    operations: list[dict[str, Any]] = field(default_factory=list)
    output_resources: list[str] = field(default_factory=list)
    evaluator: TemplateEvaluator | None = None
    plan: list[PlannedResource] = field(default_factory=list)
    # Final status of earlier runs, so an old Azure-AsyncOperation URL still answers.
    run_statuses: dict[str, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)


class DeploymentEngine:
    """Owns the deployments of every subscription and applies them through the resource providers."""

    def __init__(self, store: ArmStore, providers: ResourceProviders, default_seconds: float) -> None:
        self.store = store
        self.providers = providers
        self.default_seconds = default_seconds
        self.duration_rules: list[DurationRule] = []
        # Only _keep/_forget change `deployments`, keeping the per-group index in step.
        self.deployments: dict[str, Deployment] = {}
        # Resource group scope key -> deployment key -> deployment: a group's list without visiting every deployment.
        self._by_group: dict[str, dict[str, Deployment]] = {}
        # (deadline, tie-breaker, deployment) of runs submitted to wait for their deadline; `advance` pops the due
        # ones instead of scanning every deployment on every request. Entries of canceled or replaced runs are skipped.
        self._running: list[tuple[float, int, Deployment]] = []
        self._tie_breaker = itertools.count()
        self._lock = threading.RLock()

    # Submission --------------------------------------------------------------------------------------------------
    def _context(self, subscription: Subscription, resource_group: str, name: str) -> DeploymentContext:
        group = self.store.resource_group(subscription.id, resource_group)
        if group is None:
            raise not_found("resourceGroup", resource_group)
        return DeploymentContext(
            subscription_id=subscription.id,
            subscription_display_name=subscription.display_name,
            tenant_id=subscription.tenant_id,
            resource_group_name=group.name,
            resource_group_location=group.location,
            resource_group_tags=dict(group.tags),
            deployment_name=name,
        )

    @staticmethod
    def _read_body(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid: 'properties' is required.")
        if "templateLink" in properties or "parametersLink" in properties:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "Linked templates are not supported by this emulator; send 'template' inline.",
            )
        template = properties.get("template")
        if not isinstance(template, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content was invalid: 'properties.template' is required."
            )
        parameters = properties.get("parameters") or {}
        mode = str(properties.get("mode", "Incremental"))
        if mode.lower() not in ("incremental", "complete"):
            raise ArmError(400, "InvalidDeploymentMode", f"The deployment mode '{mode}' is not valid.")
        return template, parameters, "Complete" if mode.lower() == "complete" else "Incremental"

    def _prepare(
        self, subscription: Subscription, resource_group: str, name: str, body: dict[str, Any]
    ) -> tuple[TemplateEvaluator, list[PlannedResource], str]:
        template, parameters, mode = self._read_body(body)
        check_expressions(template)
        evaluator = TemplateEvaluator(
            template,
            parameters,
            self._context(subscription, resource_group, name),
            self._resolver,
            list_actions=self.providers.list_action,
        )
        plan = evaluator.plan()
        return evaluator, plan, mode

    def validate(
        self, subscription: Subscription, resource_group: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """POST .../validate: the template checks a PUT would make, without deploying."""
        with self.store.lock:
            evaluator, plan, mode = self._prepare(subscription, resource_group, name, body)
            deployment_id = self.deployment_id(subscription.id, resource_group, name)
            return {
                "id": deployment_id,
                "name": name,
                "type": DEPLOYMENT_TYPE,
                "properties": {
                    "templateHash": _content_hash(body["properties"]["template"], {}),
                    "parameters": _render_parameters(evaluator),
                    "mode": mode,
                    "provisioningState": "Succeeded",
                    "timestamp": _timestamp(time.time()),
                    "duration": "PT0S",
                    "correlationId": str(uuid.uuid4()),
                    "validatedResources": [{"id": item.id} for item in plan if item.condition],
                },
            }

    def submit(
        self,
        subscription: Subscription,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        caller_app: str | None,
        correlation_id: str,
    ) -> tuple[Deployment, bool]:
        """PUT a deployment: (deployment, created). Identical content while running returns the running one."""
        with self.store.lock:
            deployment_id = self.deployment_id(subscription.id, resource_group, name)
            properties: dict[str, Any] = body["properties"] if isinstance(body.get("properties"), dict) else {}
            content_hash = _content_hash(
                properties.get("template"),
                {"parameters": properties.get("parameters"), "mode": properties.get("mode", "Incremental")},
            )
            existing = self.deployments.get(id_key(deployment_id))
            if existing is not None and existing.state not in TERMINAL_STATES:
                if existing.content_hash == content_hash:
                    return existing, False
                raise ArmError(
                    409,
                    "DeploymentActive",
                    f"Unable to edit or replace deployment '{name}': previous deployment from "
                    f"'{_timestamp(existing.submitted_at)}' "
                    "is still active. Please see https://aka.ms/arm-deploy-resources for usage details.",
                )
            evaluator, plan, mode = self._prepare(subscription, resource_group, name, body)
            now = time.time()
            deployment = Deployment(
                id=deployment_id,
                name=name,
                subscription_id=subscription.id,
                resource_group=self.store.resource_group(subscription.id, resource_group).name,  # type: ignore[union-attr]
                template=properties["template"],
                parameters=properties.get("parameters") or {},
                mode=mode,
                content_hash=content_hash,
                caller_app=caller_app,
                correlation_id=correlation_id,
                run_id=str(uuid.uuid4()),
                submitted_at=now,
                deadline=now + self._seconds_for(subscription, name),
                evaluator=evaluator,
                plan=plan,
            )
            if existing is not None:
                deployment.run_statuses = dict(existing.run_statuses)
                deployment.run_statuses[existing.run_id] = (existing.state, existing.error)
            self._keep(deployment)
            heapq.heappush(self._running, (deployment.deadline, next(self._tie_breaker), deployment))
            return deployment, existing is None

    def _seconds_for(self, subscription: Subscription, name: str) -> float:
        for rule in reversed(self.duration_rules):
            if rule.matches(subscription.id, name):
                if rule.count is not None:
                    rule.count -= 1
                return rule.seconds
        if subscription.deployment_seconds is not None:
            return subscription.deployment_seconds
        return self.default_seconds

    @staticmethod
    def deployment_id(subscription_id: str, resource_group: str, name: str) -> str:
        """The id of a resource-group deployment."""
        return f"{resource_group_scope(subscription_id, resource_group)}/providers/{DEPLOYMENT_TYPE}/{name}"

    # Progress ----------------------------------------------------------------------------------------------------
    def advance(self, now: float | None = None) -> None:
        """Apply every running deployment whose deadline has passed, oldest first."""
        now = time.time() if now is None else now
        with self.store.lock:
            held: list[tuple[float, int, Deployment]] = []
            while self._running and self._running[0][0] <= now:
                entry = heapq.heappop(self._running)
                deployment = entry[2]
                if deployment.state != "Running" or self.deployments.get(id_key(deployment.id)) is not deployment:
                    continue
                subscription = self.store.subscription(deployment.subscription_id)
                if subscription is not None and subscription.deployments_held:
                    held.append(entry)
                    continue
                self._apply(deployment)
            for entry in held:
                heapq.heappush(self._running, entry)

    def _apply(self, deployment: Deployment) -> None:
        assert deployment.evaluator is not None
        subscription = self.store.subscription(deployment.subscription_id)
        if (
            subscription is None
            or self.store.resource_group(deployment.subscription_id, deployment.resource_group) is None
        ):
            self._finish(
                deployment,
                "Failed",
                {
                    "code": "ResourceGroupNotFound",
                    "message": f"Resource group '{deployment.resource_group}' could not be found.",
                },
            )
            return
        failures = self._execute(deployment, deployment.evaluator, deployment.plan, subscription)
        if failures:
            self._finish(
                deployment,
                "Failed",
                {"code": "DeploymentFailed", "message": DEPLOYMENT_FAILED_MESSAGE, "details": failures},
            )
            return
        try:
            deployment.outputs = deployment.evaluator.outputs()
        except (TemplateError, ArmError) as error:
            self._finish(deployment, "Failed", {"code": "DeploymentOutputEvaluationFailed", "message": error.message})
            return
        if deployment.mode == "Complete":
            self._remove_undeclared(deployment)
        self._finish(deployment, "Succeeded", None)

    def _execute(
        self,
        deployment: Deployment,
        evaluator: TemplateEvaluator,
        plan: list[PlannedResource],
        subscription: Subscription,
    ) -> list[dict[str, Any]]:
        """Create each resource in order; stop at the first failure (dependants could not be created)."""
        for planned in plan:
            if not planned.condition:
                continue
            started = time.time()
            operation_id = uuid.uuid4().hex[:16].upper()
            target = {
                "id": planned.id,
                "resourceType": planned.type,
                "resourceName": planned.name,
                "apiVersion": planned.api_version,
            }
            existed = self.providers.store.resource(planned.id) is not None
            try:
                body = evaluator.evaluate_resource(planned)
                if planned.is_deployment:
                    self._run_nested(deployment, evaluator, planned, body, subscription)
                else:
                    self.providers.put(parse_resource_id(planned.id), body, subscription, deployment.caller_app)
            except (ResourceFailure, ArmError) as error:
                details = getattr(error, "details", None)
                failure: dict[str, Any] = {"code": error.code, "message": error.message, "target": planned.id}
                if details:
                    failure["details"] = details
                deployment.operations.append(
                    _operation(deployment, operation_id, target, "Failed", "BadRequest", {"error": failure}, started)
                )
                return [failure]
            deployment.operations.append(
                _operation(
                    deployment,
                    operation_id,
                    target,
                    "Succeeded",
                    "OK" if existed else "Created",
                    {"status": "OK"},
                    started,
                )
            )
            deployment.output_resources.append(planned.id)
        return []

    def _run_nested(
        self,
        parent: Deployment,
        outer: TemplateEvaluator,
        planned: PlannedResource,
        body: dict[str, Any],
        subscription: Subscription,
    ) -> None:
        properties = body.get("properties") or {}
        template = properties.get("template")
        if not isinstance(template, dict):
            raise ResourceFailure(
                "InvalidTemplate", "Nested deployments need an inline 'template' (templateLink is not supported)."
            )
        resource_group = str(body.get("resourceGroup") or parent.resource_group)
        inner = str((properties.get("expressionEvaluationOptions") or {}).get("scope", "outer")).lower() == "inner"
        name = planned.name
        context = self._context(subscription, resource_group, name)
        if inner:
            evaluator = TemplateEvaluator(
                template,
                properties.get("parameters") or {},
                context,
                self._resolver,
                list_actions=self.providers.list_action,
            )
        else:
            evaluator = TemplateEvaluator(
                template, {}, context, self._resolver, outer=outer, list_actions=self.providers.list_action
            )
        plan = evaluator.plan()
        now = time.time()
        nested = Deployment(
            id=self.deployment_id(subscription.id, resource_group, name),
            name=name,
            subscription_id=subscription.id,
            resource_group=context.resource_group_name,
            template=template,
            parameters=properties.get("parameters") or {},
            mode=str(properties.get("mode", "Incremental")),
            content_hash=_content_hash(template, properties.get("parameters") or {}),
            caller_app=parent.caller_app,
            correlation_id=parent.correlation_id,
            run_id=str(uuid.uuid4()),
            submitted_at=now,
            deadline=now,
            evaluator=evaluator,
            plan=plan,
        )
        self._keep(nested)
        failures = self._execute(nested, evaluator, plan, subscription)
        if failures:
            self._finish(
                nested,
                "Failed",
                {"code": "DeploymentFailed", "message": DEPLOYMENT_FAILED_MESSAGE, "details": failures},
            )
            raise ArmError(400, "DeploymentFailed", DEPLOYMENT_FAILED_MESSAGE, details=failures)
        nested.outputs = evaluator.outputs()
        self._finish(nested, "Succeeded", None)

    def _remove_undeclared(self, deployment: Deployment) -> None:
        declared = {id_key(item.id) for item in deployment.plan if item.condition}
        scope = resource_group_scope(deployment.subscription_id, deployment.resource_group).lower()
        for resource in list(self.store.resources_under(scope)):
            parsed = parse_resource_id(resource.id)
            if parsed.scope.lower() == scope and "/" not in parsed.name and id_key(resource.id) not in declared:
                self.providers.delete(resource.id)

    def _finish(self, deployment: Deployment, state: str, error: dict[str, Any] | None) -> None:
        deployment.state = state
        deployment.error = error
        deployment.finished_at = time.time()
        deployment.run_statuses[deployment.run_id] = (state, error)

    # Reads and actions -------------------------------------------------------------------------------------------
    def get(self, subscription_id: str, resource_group: str, name: str) -> Deployment:
        """A deployment, or 404 DeploymentNotFound."""
        deployment = self.deployments.get(id_key(self.deployment_id(subscription_id, resource_group, name)))
        if deployment is None:
            raise ArmError(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        return deployment

    def list(self, subscription_id: str, resource_group: str) -> list[Deployment]:
        """Deployments of a resource group, oldest first."""
        group = self._by_group.get(id_key(resource_group_scope(subscription_id, resource_group)), {})
        return sorted(group.values(), key=lambda item: item.submitted_at)

    def cancel(self, deployment: Deployment) -> None:
        """POST .../cancel: only while running; nothing it would have created is created."""
        if deployment.state in TERMINAL_STATES:
            raise ArmError(
                409,
                "DeploymentCannotBeCancelled",
                f"The deployment '{deployment.name}' cannot be cancelled because it is in '{deployment.state}' state.",
            )
        self._finish(deployment, "Canceled", None)

    def delete(self, deployment: Deployment) -> None:
        """DELETE a deployment record (its resources stay, as in Azure); refused while it runs."""
        if deployment.state not in TERMINAL_STATES:
            raise ArmError(
                409, "DeploymentActive", f"The deployment '{deployment.name}' is still active and cannot be deleted."
            )
        self._forget(deployment)

    def delete_resource_group(self, subscription_id: str, resource_group: str) -> None:
        """Forget the deployments of a deleted resource group."""
        group = self._by_group.pop(id_key(resource_group_scope(subscription_id, resource_group)), {})
        for key in group:
            self.deployments.pop(key, None)

    def _keep(self, deployment: Deployment) -> None:
        key = id_key(deployment.id)
        self.deployments[key] = deployment
        self._by_group.setdefault(self._group_key(deployment), {})[key] = deployment

    def _forget(self, deployment: Deployment) -> None:
        key = id_key(deployment.id)
        self.deployments.pop(key, None)
        self._by_group.get(self._group_key(deployment), {}).pop(key, None)

    @staticmethod
    def _group_key(deployment: Deployment) -> str:
        return id_key(resource_group_scope(deployment.subscription_id, deployment.resource_group))

    def run_status(self, deployment: Deployment, run_id: str) -> dict[str, Any]:
        """The Azure-AsyncOperation body of a run."""
        if run_id == deployment.run_id:
            state, error = deployment.state, deployment.error
        elif run_id in deployment.run_statuses:
            state, error = deployment.run_statuses[run_id]
        else:
            raise ArmError(404, "OperationNotFound", f"The operation '{run_id}' was not found.")
        body: dict[str, Any] = {"status": state}
        if error:
            body["error"] = error
        return body

    def render(self, deployment: Deployment, provisioning_state: str | None = None) -> dict[str, Any]:
        """The deployment resource as ARM returns it; the PUT that starts a run reports `Accepted`."""
        state = provisioning_state or deployment.state
        finished = deployment.finished_at or time.time()
        properties: dict[str, Any] = {
            "templateHash": deployment.content_hash,
            "parameters": _render_parameters(deployment.evaluator) if deployment.evaluator else {},
            "mode": deployment.mode,
            "provisioningState": state,
            "timestamp": _timestamp(deployment.finished_at or deployment.submitted_at),
            "duration": _duration(finished - deployment.submitted_at),
            "correlationId": deployment.correlation_id,
            "providers": _providers(deployment.plan),
            "dependencies": [],
        }
        if deployment.outputs is not None:
            properties["outputs"] = deployment.outputs
        if deployment.state == "Succeeded":
            properties["outputResources"] = [{"id": resource_id} for resource_id in deployment.output_resources]
        if deployment.error:
            properties["error"] = deployment.error
        return {"id": deployment.id, "name": deployment.name, "type": DEPLOYMENT_TYPE, "properties": properties}

    # reference() ---------------------------------------------------------------------------------------------------
    def _resolver(self, resource_id: str, full: bool) -> Any:
        parsed = parse_resource_id(resource_id)
        if parsed.type.lower() == DEPLOYMENT_TYPE.lower():
            nested = self.deployments.get(id_key(resource_id))
            if nested is None:
                raise ResourceFailure("DeploymentNotFound", f"Deployment '{parsed.name}' could not be found.")
            rendered = self.render(nested)
            return rendered if full else rendered["properties"]
        body = self.providers.get(resource_id)
        if body is None:
            raise ResourceFailure(
                "ResourceNotFound",
                f"The Resource '{parsed.type}/{parsed.name}' under resource group '{parsed.resource_group}' "
                "was not found.",
            )
        return body if full else body.get("properties", {})


def _content_hash(template: Any, extra: Any) -> str:
    digest = hashlib.sha256(json.dumps([template, extra], sort_keys=True, default=str).encode()).digest()
    return str(int.from_bytes(digest[:8], "big"))


def _render_parameters(evaluator: TemplateEvaluator) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for key, declaration in evaluator.parameter_declarations.items():
        parameter_type = str(declaration.get("type", ""))
        entry: dict[str, Any] = {"type": parameter_type[:1].upper() + parameter_type[1:]}
        if parameter_type.lower() not in ("securestring", "secureobject"):
            entry["value"] = evaluator.parameter_values.get(key)
        rendered[evaluator.parameter_names[key]] = entry
    return rendered


def _providers(plan: list[PlannedResource]) -> list[dict[str, Any]]:
    namespaces: dict[str, set[str]] = {}
    for item in plan:
        namespace, _, rest = item.type.partition("/")
        namespaces.setdefault(namespace, set()).add(rest)
    return [
        {"namespace": namespace, "resourceTypes": [{"resourceType": resource_type} for resource_type in sorted(types)]}
        for namespace, types in sorted(namespaces.items())
    ]


def _operation(
    deployment: Deployment,
    operation_id: str,
    target: dict[str, Any],
    state: str,
    status_code: str,
    status_message: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    return {
        "id": f"{deployment.id}/operations/{operation_id}",
        "operationId": operation_id,
        "properties": {
            "provisioningOperation": "Create",
            "provisioningState": state,
            "timestamp": _timestamp(time.time()),
            "duration": _duration(time.time() - started),
            "trackingId": str(uuid.uuid4()),
            "serviceRequestId": str(uuid.uuid4()),
            "statusCode": status_code,
            "statusMessage": status_message,
            "targetResource": target,
        },
    }
