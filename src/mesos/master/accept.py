"""Validation of an ACCEPT call's operations against the offers it names (pure).

Everything is checked before anything changes, so a refused ACCEPT leaves the
master exactly as it was. Semantic races (an offer that was rescinded or already
used) are not errors: they are reported back as ``invalid_offers`` so the caller
can answer 202 and send TASK_LOST/TASK_DROPPED, as Mesos does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mesos.errors import ValidationError
from mesos.master.state import Agent, Framework, Offer, Task
from mesos.resources import (
    Resources,
    ResourcesError,
    grow_volume,
    shrink_volume,
    validate_volumes,
)
from mesos.v1 import codec
from mesos.v1 import mesos as v1

SUPPORTED_OPERATIONS = ("LAUNCH", "LAUNCH_GROUP", "RESERVE", "UNRESERVE", "CREATE", "DESTROY",
                        "GROW_VOLUME", "SHRINK_VOLUME")


@dataclass
class Launch:
    """One task (or task group member) to start, with what it consumes."""

    task: v1.TaskInfo
    executor: v1.ExecutorInfo | None  # None for command tasks
    resources: Resources  # the task's own resources
    executor_resources: Resources  # resources of a new executor, counted once
    group: list[v1.TaskInfo] | None = None  # set on the first task of a LAUNCH_GROUP


@dataclass
class AcceptPlan:
    agent_id: str | None
    role: str
    offers: list[Offer]
    launches: list[Launch] = field(default_factory=list)
    groups: list[tuple[v1.ExecutorInfo, list[Launch]]] = field(default_factory=list)
    remaining: Resources = field(default_factory=Resources.empty)
    invalid_offers: list[str] = field(default_factory=list)
    # RESERVE/UNRESERVE/CREATE/DESTROY/GROW_VOLUME/SHRINK_VOLUME, in order: (what
    # the framework held, what it holds instead)
    conversions: list[tuple[Resources, Resources]] = field(default_factory=list)


def id_problem(value: str) -> str | None:
    """Mesos' rules for task and executor ids (they name sandbox directories)."""
    if not value:
        return "must not be empty"
    if value in (".", ".."):
        return f"'{value}' is not a valid id"
    if "/" in value or "\\" in value:
        return f"'{value}' must not contain '/' or '\\'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain control characters"
    return None


def resources_of(items: list[v1.Resource], where: str) -> Resources:
    try:
        return Resources.from_json(codec.to_builtins(items))
    except ResourcesError as exc:
        raise ValidationError(f"Invalid resources in {where}: {exc}") from None


def plan_accept(
    framework: Framework,
    offers: Mapping[str, Offer],
    offer_ids: list[str],
    operations: list[v1.Operation],
    agent: Agent | None = None,
) -> AcceptPlan:
    """Check ``operations`` against ``offer_ids``; raise ValidationError if malformed.

    ``agent`` (the offers' agent) lets CREATE refuse a persistence id already in use
    there and DESTROY refuse a volume a task still uses."""
    plan = _plan_offers(framework, offers, offer_ids)
    available = Resources.empty()
    for offer in plan.offers:
        available = available + offer.resources
    if plan.invalid_offers:
        # Nothing is launched from a partly invalid ACCEPT; tasks are reported lost.
        plan.remaining = available
        _check_operation_types(operations)
        return plan
    budget = _Budget(available=available, agent=agent)
    for i, op in enumerate(operations):
        where = f"accept.operations[{i}]"
        if op.type == "LAUNCH":
            _plan_launch(framework, plan, budget, op, where)
        elif op.type == "LAUNCH_GROUP":
            _plan_group(framework, plan, budget, op, where)
        elif op.type == "RESERVE":
            _plan_reserve(framework, plan, budget, op, where)
        elif op.type == "UNRESERVE":
            _plan_unreserve(plan, budget, op, where)
        elif op.type == "CREATE":
            _plan_create(framework, plan, budget, op, where)
        elif op.type == "DESTROY":
            _plan_destroy(plan, budget, op, where)
        elif op.type in ("GROW_VOLUME", "SHRINK_VOLUME"):
            _plan_resize(plan, budget, op, where)
        else:
            raise ValidationError(
                f"Operation '{where}.type' {op.type} is not supported by this master yet"
            )
    # The offered copy of a shared volume that tasks took stays with the framework.
    taken = Resources.empty()
    for part in budget.shared_used.single_entries():
        taken = taken + part
    plan.remaining = budget.available.minus(taken)
    return plan


@dataclass
class _Budget:
    """What is left of the offers, and what the operations so far already claimed."""

    available: Resources
    agent: Agent | None = None
    seen_tasks: set[str] = field(default_factory=set)
    new_executors: dict[str, v1.ExecutorInfo] = field(default_factory=dict)
    # Shared volumes the tasks of this ACCEPT use (DESTROY must not take them).
    shared_used: Resources = field(default_factory=Resources.empty)

    def consume(self, launch: Launch, where: str) -> None:
        needed = launch.resources + launch.executor_resources
        # A shared volume stays offered when a task takes it: as in Mesos, several
        # tasks of one ACCEPT may use the one copy that was offered.
        shared = needed.shared()
        for part in shared.single_entries():
            if not self.available.contains(part):
                raise ValidationError(
                    f"Invalid '{where}.resources': task uses shared resources '{part}' "
                    f"that are not in the remaining offered resources '{self.available}'"
                )
        exclusive = needed.non_shared()
        if not self.available.contains(exclusive):
            problem = volumes_problem(exclusive, self.available,
                                      "in the remaining offered resources")
            if problem is not None:
                raise ValidationError(
                    f"Invalid '{where}.resources': {problem} (a task uses a persistent "
                    "volume whole, as offered)"
                )
            raise ValidationError(
                f"Invalid '{where}.resources': task uses resources '{needed}' "
                f"that are not in the remaining offered resources '{self.available}'"
            )
        self.available = self.available - exclusive
        self.shared_used = self.shared_used + shared

    def convert(self, old: Resources, new: Resources, where: str) -> None:
        if not self.available.contains(old):
            problem = volumes_problem(old, self.available, "in the remaining offered resources")
            if problem is not None:
                raise ValidationError(f"Invalid '{where}': {problem}")
            raise ValidationError(
                f"Invalid '{where}': '{old}' is not in the remaining offered resources "
                f"'{self.available}'"
            )
        self.available = self.available - old + new


def _plan_reserve(
    framework: Framework, plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str
) -> None:
    """RESERVE: offered resources (or a reservation of them) gain one dynamic
    reservation to the offer's role; later operations of the same ACCEPT see them."""
    if op.reserve is None:
        raise ValidationError(f"Expecting '{where}.reserve' to be present")
    wanted = _in_role(resources_of(op.reserve.resources, f"'{where}.reserve.resources'"),
                      plan.role, f"{where}.reserve.resources")
    if not wanted:
        raise ValidationError(f"Invalid '{where}.reserve.resources': nothing to reserve")
    principal = framework.info.principal
    for entry in wanted:
        if not entry.reservations or entry.reservations[-1].type != "DYNAMIC":
            raise ValidationError(
                f"Invalid '{where}.reserve.resources': '{entry.name}' needs a DYNAMIC reservation"
            )
        last = entry.reservations[-1]
        if last.role != plan.role:
            raise ValidationError(
                f"Invalid '{where}.reserve.resources': reservation role '{last.role}' is not the "
                f"role the offers are allocated to ('{plan.role}')"
            )
        if last.principal is not None and last.principal != principal:
            raise ValidationError(
                f"Invalid '{where}.reserve.resources': principal '{last.principal}' is not the "
                f"framework's ({principal!r})"
            )
    try:
        source = wanted.pop_reservation()
    except ValueError as exc:
        raise ValidationError(f"Invalid '{where}.reserve.resources': {exc}") from None
    budget.convert(source, wanted, f"{where}.reserve.resources")
    plan.conversions.append((source, wanted))


def _plan_unreserve(plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str) -> None:
    """UNRESERVE: the most refined dynamic reservation of offered resources is dropped."""
    if op.unreserve is None:
        raise ValidationError(f"Expecting '{where}.unreserve' to be present")
    held = _in_role(resources_of(op.unreserve.resources, f"'{where}.unreserve.resources'"),
                    plan.role, f"{where}.unreserve.resources")
    if not held:
        raise ValidationError(f"Invalid '{where}.unreserve.resources': nothing to unreserve")
    check_unreserve(held, f"{where}.unreserve.resources")
    for entry in held:
        if not entry.reservations or entry.reservations[-1].type != "DYNAMIC":
            raise ValidationError(
                f"Invalid '{where}.unreserve.resources': '{entry.name}' has no dynamic "
                "reservation to drop"
            )
    released = held.pop_reservation()
    budget.convert(held, released, f"{where}.unreserve.resources")
    plan.conversions.append((held, released))


def _plan_create(
    framework: Framework, plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str
) -> None:
    """CREATE: reserved offered disk becomes persistent volumes of the offer's role."""
    if op.create is None:
        raise ValidationError(f"Expecting '{where}.create' to be present")
    vwhere = f"{where}.create.volumes"
    volumes = _in_role(resources_of(op.create.volumes, f"'{vwhere}'"), plan.role, vwhere)
    check_new_volumes(volumes, vwhere, budget.agent.total if budget.agent else None,
                      framework.info.principal)
    for volume in volumes.volumes():
        if volume.role != plan.role and not volume.role.startswith(plan.role + "/"):
            raise ValidationError(
                f"Invalid '{vwhere}': volume '{volume.persistence_id}' is reserved to "
                f"'{volume.role}', not to the offers' role '{plan.role}'"
            )
        if volume.shared and "SHARED_RESOURCES" not in framework.capabilities:
            raise ValidationError(
                f"Invalid '{vwhere}': shared volume '{volume.persistence_id}' needs the "
                "SHARED_RESOURCES capability"
            )
    source = volumes.without_volumes()
    budget.convert(source, volumes, vwhere)
    plan.conversions.append((source, volumes))


def _plan_destroy(plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str) -> None:
    """DESTROY: offered persistent volumes go back to being plain reserved disk."""
    if op.destroy is None:
        raise ValidationError(f"Expecting '{where}.destroy' to be present")
    vwhere = f"{where}.destroy.volumes"
    volumes = _in_role(resources_of(op.destroy.volumes, f"'{vwhere}'"), plan.role, vwhere)
    check_destroy(volumes, vwhere, budget.agent.total if budget.agent else None,
                  agent_in_use(budget.agent) + budget.shared_used if budget.agent
                  else budget.shared_used)
    released = volumes.without_volumes()
    budget.convert(volumes, released, vwhere)
    plan.conversions.append((volumes, released))


def _plan_resize(plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str) -> None:
    """GROW_VOLUME / SHRINK_VOLUME: an offered volume (the whole of it) changes size
    in place; growing takes offered disk of the same reservation, shrinking gives
    that much back as such disk, which later operations of the ACCEPT can use."""
    if op.type == "GROW_VOLUME":
        if op.grow_volume is None:
            raise ValidationError(f"Expecting '{where}.grow_volume' to be present")
        owhere = f"{where}.grow_volume"
        volume = _in_role(resources_of([op.grow_volume.volume], f"'{owhere}.volume'"),
                          plan.role, f"{owhere}.volume")
        addition = _in_role(resources_of([op.grow_volume.addition], f"'{owhere}.addition'"),
                            plan.role, f"{owhere}.addition")
        old, new = resize_volume(volume, addition, None, owhere)
    else:
        if op.shrink_volume is None:
            raise ValidationError(f"Expecting '{where}.shrink_volume' to be present")
        owhere = f"{where}.shrink_volume"
        volume = _in_role(resources_of([op.shrink_volume.volume], f"'{owhere}.volume'"),
                          plan.role, f"{owhere}.volume")
        old, new = resize_volume(volume, None, op.shrink_volume.subtract.value, owhere)
    problem = whole_volume_problem(volume, budget.available)
    if problem is not None:
        raise ValidationError(f"Invalid '{owhere}.volume': {problem} in the remaining "
                              "offered resources")
    budget.convert(old, new, owhere)
    plan.conversions.append((old, new))


def resize_volume(volume: Resources, addition: Resources | None, subtract: float | None,
                  where: str) -> tuple[Resources, Resources]:
    """GROW_VOLUME (``addition``) or SHRINK_VOLUME (``subtract``) as ``(old, new)``,
    for an ACCEPT and the operator API alike; ValidationError when malformed."""
    try:
        if addition is not None:
            return grow_volume(volume, addition, where)
        assert subtract is not None
        return shrink_volume(volume, subtract, where)
    except ResourcesError as exc:
        raise ValidationError(str(exc)) from None


def whole_volume_problem(volume: Resources, held: Resources) -> str | None:
    """Why ``volume`` (one persistent volume) is not exactly one of the volumes in
    ``held``, or None. A resize names the whole volume: Mesos never splits one, and
    a wrong size or path must not resize a volume it does not describe."""
    [wanted] = volume.volumes()
    other = None
    for have in held.volumes():
        if (have.role, have.persistence_id) != (wanted.role, wanted.persistence_id):
            continue
        if have.resources == wanted.resources:
            return None
        other = other or have
    if other is not None:
        return (f"persistent volume '{wanted.persistence_id}' is {other.resources}, "
                f"not {wanted.resources},")
    return f"persistent volume '{wanted.persistence_id}' of role '{wanted.role}' is not found"


def volumes_problem(wanted: Resources, held: Resources, where_held: str) -> str | None:
    """Why the persistent volumes in ``wanted`` are not each one whole volume of
    ``held`` (``where_held`` says where that is, for the message), or None. As in
    Mesos a volume that is not shared is indivisible: a part of it (a smaller size,
    another path or mode) names nothing, and naming it twice is not two volumes."""
    named: set[tuple[str, str]] = set()
    for volume in wanted.volumes():
        ident = (volume.role, volume.persistence_id)
        if not volume.shared:
            if ident in named:
                return f"persistent volume '{volume.persistence_id}' is named more than once"
            named.add(ident)
        problem = whole_volume_problem(volume.resources, held)
        if problem is not None:
            return f"{problem} {where_held}"
    return None


def check_unreserve(resources: Resources, where: str) -> None:
    """Mesos refuses to unreserve disk that still carries a persistent volume."""
    for volume in resources.volumes():
        raise ValidationError(
            f"Invalid '{where}': persistent volume '{volume.persistence_id}' cannot be "
            "unreserved; destroy it first"
        )


def check_new_volumes(volumes: Resources, where: str, agent_total: Resources | None,
                      principal: str | None) -> None:
    """The volumes of a CREATE (ACCEPT or operator): well formed, and their ids not
    already used by a volume of the same role on the agent."""
    try:
        validate_volumes(volumes, where)
    except ResourcesError as exc:
        raise ValidationError(str(exc)) from None
    existing = {(v.role, v.persistence_id) for v in agent_total.volumes()} if agent_total else set()
    for volume in volumes.volumes():
        if (volume.role, volume.persistence_id) in existing:
            raise ValidationError(
                f"Invalid '{where}': persistence id '{volume.persistence_id}' is already in use "
                f"by role '{volume.role}' on the agent"
            )
        if principal is not None and volume.principal is not None and volume.principal != principal:
            raise ValidationError(
                f"Invalid '{where}': volume '{volume.persistence_id}' principal "
                f"'{volume.principal}' is not the caller's ('{principal}')"
            )


def check_destroy(volumes: Resources, where: str, agent_total: Resources | None,
                  in_use: Resources) -> None:
    """The volumes of a DESTROY: persistent volumes that exist and no task uses."""
    if not volumes:
        raise ValidationError(f"Invalid '{where}': no volumes given")
    if volumes.persistent_volumes() != volumes:
        raise ValidationError(f"Invalid '{where}': only persistent volumes can be destroyed")
    if agent_total is not None and not agent_total.contains(volumes):
        # A volume is destroyed whole: a part of one is refused, not half-destroyed.
        problem = volumes_problem(volumes, agent_total, "on the agent")
        if problem is not None:
            raise ValidationError(f"Invalid '{where}': {problem} (a persistent volume is "
                                  "destroyed whole)")
        raise ValidationError(f"Invalid '{where}': persistent volumes not found: {volumes}")
    busy = {(v.role, v.persistence_id) for v in in_use.volumes()}
    for volume in volumes.volumes():
        if (volume.role, volume.persistence_id) in busy:
            raise ValidationError(
                f"Invalid '{where}': persistent volume '{volume.persistence_id}' is in use"
            )


def agent_in_use(agent: Agent | None) -> Resources:
    """What the live tasks and executors on ``agent`` hold (allocation stripped)."""
    if agent is None:
        return Resources.empty()
    used = Resources.empty()
    for task in agent.all_tasks():
        if not task.terminal:
            used = used + task.resources.unallocated()
    for executors in agent.executors.values():
        for executor in executors.values():
            used = used + resources_of(executor.resources, "executor resources").unallocated()
    return used


def _plan_offers(framework: Framework, offers: Mapping[str, Offer], offer_ids: list[str]) -> AcceptPlan:
    if not offer_ids:
        raise ValidationError("Failed to validate scheduler::Call: Expecting at least one offer ID")
    if len(set(offer_ids)) != len(offer_ids):
        raise ValidationError(
            "Failed to validate scheduler::Call: Duplicate offer IDs in 'accept.offer_ids'"
        )
    valid: list[Offer] = []
    invalid: list[str] = []
    for offer_id in offer_ids:
        offer = offers.get(offer_id)
        if offer is None or offer.framework_id != framework.id:
            invalid.append(offer_id)
        else:
            valid.append(offer)
    agents = {o.agent_id for o in valid}
    if len(agents) > 1:
        raise ValidationError(
            "Failed to validate scheduler::Call: Aggregated offers must belong to one agent"
        )
    roles = {o.role for o in valid}
    if len(roles) > 1:
        raise ValidationError(
            "Failed to validate scheduler::Call: Aggregated offers must be allocated to one role"
        )
    return AcceptPlan(
        agent_id=next(iter(agents)) if agents else None,
        role=next(iter(roles)) if roles else (framework.roles[0] if framework.roles else "*"),
        offers=valid,
        invalid_offers=invalid,
    )


def _plan_launch(
    framework: Framework, plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str
) -> None:
    if op.launch is None:
        raise ValidationError(f"Expecting '{where}.launch' to be present")
    for j, task in enumerate(op.launch.task_infos):
        twhere = f"{where}.launch.task_infos[{j}]"
        launch = _plan_task(framework, plan, task, None, twhere, budget)
        budget.consume(launch, twhere)
        plan.launches.append(launch)


def _plan_group(
    framework: Framework, plan: AcceptPlan, budget: _Budget, op: v1.Operation, where: str
) -> None:
    if op.launch_group is None:
        raise ValidationError(f"Expecting '{where}.launch_group' to be present")
    executor = op.launch_group.executor
    if executor.type not in (None, "DEFAULT"):
        raise ValidationError(f"'{where}.launch_group.executor.type' must be DEFAULT")
    tasks = op.launch_group.task_group.tasks
    if not tasks:
        raise ValidationError(f"'{where}.launch_group.task_group.tasks' must not be empty")
    members: list[Launch] = []
    for j, task in enumerate(tasks):
        twhere = f"{where}.launch_group.task_group.tasks[{j}]"
        if task.executor is not None:
            raise ValidationError(f"'{twhere}.executor' must not be set in a task group")
        if task.command is None:
            raise ValidationError(f"'{twhere}.command' is required in a task group")
        launch = _plan_task(framework, plan, task, executor, twhere, budget)
        budget.consume(launch, twhere)
        members.append(launch)
    plan.groups.append((executor, members))


def _check_operation_types(operations: list[v1.Operation]) -> None:
    for i, op in enumerate(operations):
        if op.type not in SUPPORTED_OPERATIONS:
            raise ValidationError(
                f"Operation 'accept.operations[{i}].type' {op.type} is not supported by this master yet"
            )


def _plan_task(
    framework: Framework,
    plan: AcceptPlan,
    task: v1.TaskInfo,
    group_executor: v1.ExecutorInfo | None,
    where: str,
    budget: _Budget,
) -> Launch:
    task_id = task.task_id.value
    problem = id_problem(task_id)
    if problem:
        raise ValidationError(f"Invalid '{where}.task_id': {problem}")
    if task_id in budget.seen_tasks or task_id in framework.tasks or task_id in framework.unreachable_tasks:
        raise ValidationError(f"Invalid '{where}.task_id': task '{task_id}' already exists")
    budget.seen_tasks.add(task_id)
    if plan.agent_id is not None and task.agent_id.value != plan.agent_id:
        raise ValidationError(
            f"Invalid '{where}.agent_id': '{task.agent_id.value}' is not the agent of the offers "
            f"('{plan.agent_id}')"
        )
    if group_executor is None and (task.command is None) == (task.executor is None):
        raise ValidationError(f"Invalid '{where}': exactly one of 'command' or 'executor' must be set")
    resources = _in_role(resources_of(task.resources, f"'{where}.resources'"), plan.role,
                         f"{where}.resources")
    if not resources:
        raise ValidationError(f"Invalid '{where}.resources': a task must use some resources")
    executor = group_executor if group_executor is not None else task.executor
    executor_resources = Resources.empty()
    if executor is not None:
        exec_id = executor.executor_id.value
        problem = id_problem(exec_id)
        if problem:
            raise ValidationError(f"Invalid executor_id of '{where}': {problem}")
        if executor.framework_id is not None and executor.framework_id.value != framework.id:
            raise ValidationError(f"Invalid '{where}': executor's framework_id is not this framework")
        known = framework.executors.get(plan.agent_id or "", {}).get(exec_id)
        pending = budget.new_executors.get(exec_id)
        if known is None and pending is None:
            executor_resources = _in_role(
                resources_of(executor.resources, f"'{where}' executor resources"), plan.role,
                f"{where} executor resources",
            )
            budget.new_executors[exec_id] = executor
        else:
            existing = known if known is not None else pending
            assert existing is not None
            if _executor_key(existing) != _executor_key(executor):
                raise ValidationError(
                    f"Invalid '{where}': executor '{exec_id}' differs from the one already running"
                )
    return Launch(task=task, executor=executor, resources=resources,
                  executor_resources=executor_resources)


def _in_role(resources: Resources, role: str, where: str) -> Resources:
    """Resources as the offer holds them: MULTI_ROLE frameworks tag them with the
    offer's allocation role (``allocation_info``), which must be the offer's."""
    for allocated in resources.allocations():
        if allocated != role:
            raise ValidationError(
                f"Invalid '{where}': allocated to role '{allocated}' but the offers are "
                f"allocated to '{role}'"
            )
    return resources.unallocated()


def _executor_key(info: v1.ExecutorInfo) -> bytes:
    stripped = codec.to_builtins(info)
    stripped.pop("framework_id", None)
    return codec.encode(stripped)


def task_of(launch: Launch, framework: Framework, role: str) -> Task:
    executor_id = launch.executor.executor_id.value if launch.executor is not None else ""
    return Task(
        info=launch.task,
        framework_id=framework.id,
        agent_id=launch.task.agent_id.value,
        executor_id=executor_id,
        role=role,
        resources=launch.resources,
    )
