"""Which cameras this node takes or gives up, decided by each node alone from one snapshot of the tables.

Every node runs the same pure plan() on (nearly) the same snapshot, so they agree without talking:
- a free camera goes to the live node whose load (cameras / capacity) is lowest once it takes it, ties by
  name; cameras are handed out in id order, each counted before the next, so one tick spreads them;
- a camera free for longer than a TTL (its chosen node is slow) goes to whoever asks first;
- a pinned camera only ever goes to its node; a camera being moved only to the move's target;
- rebalance: a node holding more than one camera above its ideal share gives back at most `max_moves`
  per period; within one camera of it, one only when the receiver would not end up heavier than the
  giver (hysteresis: no move is ever worth undoing, so nothing flaps).
The database settles races: acquire() succeeds for one node only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    capacity: float
    up: bool
    heartbeat_at: datetime
    load: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseView:
    camera_id: int
    node: str | None
    token: int
    live: bool  # held and not expired (the database's clock)
    free_s: float  # how long it has been free or expired (0 while live)
    move_to: str | None = None


@dataclass(frozen=True, slots=True)
class CameraView:
    camera_id: int
    enabled: bool
    pinned_node: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: dict[str, NodeView]
    leases: dict[int, LeaseView]
    cameras: dict[int, CameraView]

    def up(self) -> dict[str, float]:
        return {n.name: n.capacity for n in self.nodes.values() if n.up}

    def owner(self, camera_id: int) -> str | None:
        lease = self.leases.get(camera_id)
        return lease.node if lease is not None and lease.live else None

    def counts(self) -> dict[str, int]:
        """Live leases per node, enabled cameras only."""
        counts: dict[str, int] = {}
        for lease in self.leases.values():
            camera = self.cameras.get(lease.camera_id)
            if lease.live and lease.node is not None and camera is not None and camera.enabled:
                counts[lease.node] = counts.get(lease.node, 0) + 1
        return counts


@dataclass(frozen=True, slots=True)
class Plan:
    take: list[int]
    release: list[int]


def ideal_share(me: str, snap: Snapshot) -> float:
    up = snap.up()
    total = sum(1 for c in snap.cameras.values() if c.enabled)
    return total * up.get(me, 0.0) / sum(up.values()) if up else 0.0


def plan(
    me: str,
    snap: Snapshot,
    held: set[int],
    stale_after_s: float,
    max_moves: int = 2,
    keep: frozenset[int] = frozenset(),
) -> Plan:
    """`keep`: held cameras never given back to rebalance (moved here by hand)."""
    up = snap.up()
    release = _given_back(me, snap, held, up)
    counts = snap.counts()
    counts[me] = len(held - set(release))
    release += _rebalance(me, snap, held - set(release) - keep, up, counts, max_moves)
    counts[me] = len(held - set(release))
    return Plan(_taken(me, snap, held | set(release), up, counts, stale_after_s), release)


def _given_back(me: str, snap: Snapshot, held: set[int], up: dict[str, float]) -> list[int]:
    """Disabled, deleted, pinned elsewhere, or moved to a live node."""
    out = []
    for cid in sorted(held):
        camera = snap.cameras.get(cid)
        lease = snap.leases.get(cid)
        gone = camera is None or not camera.enabled
        pinned_away = camera is not None and camera.pinned_node not in (None, me)
        moved = lease is not None and lease.move_to not in (None, me) and lease.move_to in up
        if gone or pinned_away or moved:
            out.append(cid)
    return out


def _rebalance(
    me: str, snap: Snapshot, held: set[int], up: dict[str, float], counts: dict[str, int], max_moves: int
) -> list[int]:
    """More than one camera above the ideal: give back down to it (at most max_moves). Within one of it:
    give back one only if the lightest node, taking it, would still carry no more than this node after
    (4/4/1 -> 3/3/3, but 3/2 stays): a move that the receiver could never want to undo, so no flapping."""
    ideal = ideal_share(me, snap)
    mine = counts.get(me, 0)
    if mine <= ideal or me not in up:
        return []
    others = [n for n in up if n != me]
    if not others:
        return []
    lightest = min(others, key=lambda n: ((counts.get(n, 0) + 1) / up[n], n))
    if mine - ideal > 1:
        n = min(max_moves, mine - math.ceil(ideal))
    elif (counts.get(lightest, 0) + 1) / up[lightest] <= (mine - 1) / up[me]:
        n = 1
    else:
        return []
    movable = sorted((c for c in held if snap.cameras[c].pinned_node != me), reverse=True)
    return movable[:n]


def _taken(
    me: str,
    snap: Snapshot,
    skip: set[int],
    up: dict[str, float],
    counts: dict[str, int],
    stale_after_s: float,
) -> list[int]:
    take = []
    for cid in sorted(snap.cameras):
        camera = snap.cameras[cid]
        lease = snap.leases.get(cid)
        if cid in skip or not camera.enabled or lease is None or lease.live:
            continue
        if camera.pinned_node is not None:
            candidates = [camera.pinned_node] if camera.pinned_node in up else []
        elif lease.move_to in up:
            candidates = [str(lease.move_to)]
        else:
            candidates = sorted(up)
        if not candidates:
            continue
        chosen = min(candidates, key=lambda n: ((counts.get(n, 0) + 1) / up[n], n))
        counts[chosen] = counts.get(chosen, 0) + 1
        if chosen == me or (me in candidates and lease.free_s > stale_after_s):
            take.append(cid)
    return take
