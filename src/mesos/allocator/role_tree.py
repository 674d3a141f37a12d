"""The role tree: hierarchical roles, their weights, quota and allocation books.

Roles are paths (`eng/web/prod`); `*` is an ordinary top-level role. A `Role` node
exists while anything refers to it: a framework subscribed to it or holding
resources under it, a reservation, a quota, or a child role. Each node keeps

* `frameworks`: a flat `Sorter` of the frameworks in the role (the second level of
  Mesos' two-level sort);
* `sorter`: once the role has children, a flat `Sorter` of its children (by their
  subtree allocation and weight) plus one *virtual leaf* entry, `<role>/.`, standing
  for the frameworks in the role itself (Mesos' hierarchical DRF does the same). The
  root always has one, over the top-level roles. A role without children has no
  sorter of its own: its parent's entry is all there is;
* quota books: `guarantees` and `limits` (thousandths, see `vectors`), what the
  subtree `consumed` (allocations except revocable ones, plus reservations not
  allocated), and `need`, the headroom the subtree's guarantees still require
  (see `quota`).

`iterate()` walks the tree depth first, each node's children in its sorter's
order, and yields the roles that have a framework to offer to: the order in which
the allocator visits roles. Sharing is hierarchical: `eng/web` and `eng/api`
compete for what `eng` gets, `eng` competes with `ops` at the top.

The `--roles` whitelist helpers (`parse_roles_flag`, `check_roles`) live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from mesos.allocator import vectors
from mesos.allocator.sorter import Sorter
from mesos.allocator.vectors import Vector
from mesos.resources import validate_role

SELF = "/."  # suffix of a role's virtual-leaf entry in its own sorter


class Role:
    """One node of the tree; see the module docstring."""

    __slots__ = (
        "active_roles",
        "child_need",
        "children",
        "consumed",
        "counted",
        "frameworks",
        "guaranteed_kinds",
        "guarantees",
        "limited",
        "limits",
        "need",
        "parent",
        "path",
        "reserved",
        "self_key",
        "sorter",
    )

    def __init__(self, path: str, parent: Role | None, frameworks: Sorter) -> None:
        self.path = path
        self.parent = parent
        self.self_key = path + SELF
        self.children: dict[str, Role] = {}
        self.sorter: Sorter | None = None
        self.frameworks = frameworks
        # Roles in this subtree (this one included) with a framework to offer to,
        # and whether this role itself is counted among them.
        self.active_roles = 0
        self.counted = False
        self.guarantees: Vector = {}
        self.limits: Vector = {}
        # Kinds guaranteed on this role or an ancestor; whether any of them has limits.
        self.guaranteed_kinds: frozenset[str] = frozenset()
        self.limited = False
        self.consumed: Vector = {}
        self.reserved: Vector = {}
        self.need: Vector = {}
        self.child_need: Vector = {}

    @property
    def offerable(self) -> bool:
        """Whether a framework in this very role can be offered resources."""
        return self.frameworks.active_count() > 0

    def chain(self) -> Iterator[Role]:
        """This role and its ancestors, nearest first (the root excluded)."""
        node: Role | None = self
        while node is not None and node.parent is not None:
            yield node
            node = node.parent

    def is_empty(self) -> bool:
        return not (
            self.children
            or len(self.frameworks)
            or self.guarantees
            or self.limits
            or self.reserved
            or self.consumed
        )

    def __repr__(self) -> str:
        return f"Role({self.path!r})"


class RoleTree:
    """Every known role, the hierarchical order, and the per-role books."""

    __slots__ = ("_new_framework_sorter", "_new_sorter", "_pool", "_roles", "_weights", "root")

    def __init__(
        self,
        role_sorter: Callable[[], Sorter],
        framework_sorter: Callable[[], Sorter] | None = None,
    ) -> None:
        self._new_sorter = role_sorter
        self._new_framework_sorter = framework_sorter or role_sorter
        self._roles: dict[str, Role] = {}
        self._weights: dict[str, float] = {}
        self._pool: Vector = {}
        self.root = Role("", None, self._new_framework_sorter())
        self.root.sorter = role_sorter()

    def new_role_sorter(self) -> Sorter:
        """A fresh sorter of the kind that orders roles."""
        return self._new_sorter()

    # --- nodes -----------------------------------------------------------------

    def get(self, path: str) -> Role | None:
        return self._roles.get(path)

    def __getitem__(self, path: str) -> Role:
        return self._roles[path]

    def __contains__(self, path: str) -> bool:
        return path in self._roles

    def __iter__(self) -> Iterator[Role]:
        return iter(list(self._roles.values()))

    def __len__(self) -> int:
        return len(self._roles)

    def ensure(self, path: str) -> Role:
        """The node for `path`, created (with its ancestors) if needed."""
        role = self._roles.get(path)
        if role is not None:
            return role
        head, sep, _ = path.rpartition("/")
        parent = self.ensure(head) if sep else self.root
        if parent.sorter is None:
            self._give_sorter(parent)
        role = Role(path, parent, self._new_framework_sorter())
        role.frameworks.add_total(self._pool)
        self._roles[path] = role
        parent.children[path] = role
        assert parent.sorter is not None
        parent.sorter.add(path)
        weight = self._weights.get(path)
        if weight is not None:
            parent.sorter.update_weight(path, weight)
        role.guaranteed_kinds = parent.guaranteed_kinds
        role.limited = parent.limited
        return role

    def prune(self, role: Role) -> None:
        """Drop `role`, then its ancestors, for as long as they are empty."""
        if self._roles.get(role.path) is not role:
            return  # already gone
        node: Role | None = role
        while node is not None and node.parent is not None and node.is_empty():
            parent = node.parent
            assert parent.sorter is not None
            parent.sorter.remove(node.path)
            del parent.children[node.path]
            del self._roles[node.path]
            if not parent.children and parent.parent is not None:
                parent.sorter = None  # its entry in the grandparent says it all again
            node = parent

    def _give_sorter(self, role: Role) -> None:
        """`role` gets its first child: give it a sorter with its virtual leaf."""
        assert role.parent is not None and role.parent.sorter is not None
        sorter = self._new_sorter()
        sorter.add_total(self._pool)
        sorter.add(role.self_key)
        sorter.allocated(role.self_key, role.parent.sorter.allocation(role.path))
        weight = self._weights.get(role.path)
        if weight is not None:
            sorter.update_weight(role.self_key, weight)
        if role.counted:
            sorter.activate(role.self_key)
        role.sorter = sorter

    # --- order -----------------------------------------------------------------

    def iterate(self) -> Iterator[Role]:
        """Roles with a framework to offer to, in offer order (depth first).

        Like `Sorter.iterate`, valid only until an allocation changes the order.
        """
        return self._walk(self.root)

    def _walk(self, node: Role) -> Iterator[Role]:
        assert node.sorter is not None
        children = node.children
        for key in node.sorter.iterate():
            child = children.get(key)
            if child is None:
                yield node  # the virtual leaf: frameworks in `node` itself
            elif child.sorter is None:
                yield child
            else:
                yield from self._walk(child)

    def sync_activity(self, role: Role) -> None:
        """After `role.frameworks` (de)activated someone: update the tree's order."""
        offerable = role.offerable
        if role.sorter is not None:
            if offerable:
                role.sorter.activate(role.self_key)
            else:
                role.sorter.deactivate(role.self_key)
        if role.counted == offerable:
            return
        role.counted = offerable
        step = 1 if offerable else -1
        node = role
        while node.parent is not None:
            before = node.active_roles
            node.active_roles += step
            parent = node.parent
            assert parent.sorter is not None
            if before == 0 and node.active_roles > 0:
                parent.sorter.activate(node.path)
            elif before > 0 and node.active_roles == 0:
                parent.sorter.deactivate(node.path)
            node = parent
        node.active_roles += step

    # --- allocations -----------------------------------------------------------

    def allocated(self, role: Role, quantities: Vector) -> None:
        """`role` (and so each ancestor's subtree) got `quantities` more."""
        if role.sorter is not None:
            role.sorter.allocated(role.self_key, quantities)
        node = role
        while node.parent is not None:
            parent = node.parent
            parent.sorter.allocated(node.path, quantities)  # type: ignore[union-attr]
            node = parent

    def unallocated(self, role: Role, quantities: Vector) -> None:
        if role.sorter is not None:
            role.sorter.unallocated(role.self_key, quantities)
        node = role
        while node.parent is not None:
            parent = node.parent
            parent.sorter.unallocated(node.path, quantities)  # type: ignore[union-attr]
            node = parent

    def allocation(self, role: Role) -> dict[str, float]:
        """What the subtree of `role` holds (sorter units: thousandths)."""
        assert role.parent is not None and role.parent.sorter is not None
        return role.parent.sorter.allocation(role.path)

    def share(self, role: Role) -> float:
        """The weighted share `role` is sorted by among its siblings."""
        assert role.parent is not None and role.parent.sorter is not None
        return role.parent.sorter.share(role.path)

    # --- pool and weights ------------------------------------------------------

    def add_total(self, quantities: Vector) -> None:
        vectors.add(self._pool, quantities)
        for sorter in self._sorters():
            sorter.add_total(quantities)

    def remove_total(self, quantities: Vector) -> None:
        vectors.subtract(self._pool, quantities)
        for sorter in self._sorters():
            sorter.remove_total(quantities)

    def pool(self) -> Vector:
        return dict(self._pool)

    def _sorters(self) -> Iterator[Sorter]:
        assert self.root.sorter is not None
        yield self.root.sorter
        for role in self._roles.values():
            yield role.frameworks
            if role.sorter is not None:
                yield role.sorter

    def update_weight(self, path: str, weight: float) -> None:
        """Weight of `path` among its siblings (> 0; 1 by default)."""
        if not weight > 0:
            raise ValueError(f"Weight of role '{path}' must be positive, got {weight}")
        if weight == 1.0:
            self._weights.pop(path, None)
        else:
            self._weights[path] = weight
        role = self._roles.get(path)
        if role is not None:
            assert role.parent is not None and role.parent.sorter is not None
            role.parent.sorter.update_weight(path, weight)
            if role.sorter is not None:
                role.sorter.update_weight(role.self_key, weight)

    def weight(self, path: str) -> float:
        return self._weights.get(path, 1.0)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    # --- quota wiring ----------------------------------------------------------

    def refresh_quota_flags(self) -> None:
        """Recompute `guaranteed_kinds` / `limited` down the tree (after a quota change)."""
        stack = [(child, frozenset[str](), False) for child in self.root.children.values()]
        while stack:
            role, kinds, limited = stack.pop()
            role.guaranteed_kinds = kinds | role.guarantees.keys()
            role.limited = limited or bool(role.limits)
            stack.extend((c, role.guaranteed_kinds, role.limited) for c in role.children.values())

    def top_level(self) -> Iterable[Role]:
        return self.root.children.values()


# ----------------------------------------------------------------------------- --roles


def parse_roles_flag(text: str | None) -> frozenset[str] | None:
    """`--roles=a,b/c` -> the whitelist (`*` always included); None when not given."""
    if text is None or not text.strip():
        return None
    roles = {part.strip() for part in text.split(",") if part.strip()}
    for role in roles:
        validate_role(role)
    return frozenset(roles | {"*"})


def check_roles(roles: Iterable[str], whitelist: frozenset[str] | None) -> None:
    """Raise ValueError naming the first role not in the `--roles` whitelist (None: any)."""
    if whitelist is None:
        return
    for role in roles:
        if role not in whitelist:
            raise ValueError(f"Role '{role}' is not present in the master's --roles")
