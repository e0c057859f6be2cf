"""plan(): the pure camera choice each node makes from one snapshot of the nodes and leases."""

from __future__ import annotations

from datetime import UTC, datetime

from app.cluster.assignment import CameraView, LeaseView, NodeView, Snapshot, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(
    nodes: dict[str, float],
    owners: dict[int, str | None],
    *,
    down: tuple[str, ...] = (),
    pinned: dict[int, str] | None = None,
    moves: dict[int, str] | None = None,
    free_s: float = 0.5,
) -> Snapshot:
    pinned = pinned or {}
    moves = moves or {}
    return Snapshot(
        nodes={n: NodeView(n, cap, n not in down, T0) for n, cap in nodes.items()},
        leases={
            cid: LeaseView(cid, node, 1, node is not None, 0.0 if node else free_s, moves.get(cid))
            for cid, node in owners.items()
        },
        cameras={cid: CameraView(cid, True, pinned.get(cid), T0) for cid in owners},
    )


def placement(nodes: dict[str, float], n_cameras: int) -> dict[str, list[int]]:
    """Every node plans on the same snapshot of free cameras: what each would take."""
    snap = snapshot(nodes, {cid: None for cid in range(1, n_cameras + 1)})
    return {name: plan(name, snap, set(), stale_after_s=10).take for name in nodes}


class TestSpread:
    def test_equal_nodes_take_equal_shares_and_never_the_same_camera(self) -> None:
        taken = placement({"a": 1, "b": 1, "c": 1}, 9)
        assert sorted(len(t) for t in taken.values()) == [3, 3, 3]
        assert sorted(c for t in taken.values() for c in t) == list(range(1, 10))

    def test_capacity_weights_the_share(self) -> None:
        taken = placement({"big": 2, "small": 1}, 9)
        assert (len(taken["big"]), len(taken["small"])) == (6, 3)

    def test_a_loaded_node_takes_nothing_while_another_is_lighter(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: "a", 2: "a", 3: None})
        assert plan("a", snap, {1, 2}, stale_after_s=10).take == []
        assert plan("b", snap, set(), stale_after_s=10).take == [3]

    def test_a_camera_free_too_long_goes_to_whoever_asks(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: "a", 2: None}, free_s=30)
        assert plan("a", snap, {1}, stale_after_s=10).take == [2]

    def test_down_nodes_get_nothing(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: None, 2: None}, down=("b",))
        assert plan("a", snap, set(), stale_after_s=10).take == [1, 2]


class TestPinAndMove:
    def test_a_pinned_camera_goes_only_to_its_node(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: None}, pinned={1: "b"})
        assert plan("a", snap, set(), stale_after_s=10).take == []
        assert plan("b", snap, set(), stale_after_s=10).take == [1]

    def test_a_camera_pinned_to_a_down_node_stays_free(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: None}, pinned={1: "b"}, down=("b",), free_s=60)
        assert plan("a", snap, set(), stale_after_s=10).take == []

    def test_the_holder_gives_back_a_camera_pinned_elsewhere(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: "a"}, pinned={1: "b"})
        assert plan("a", snap, {1}, stale_after_s=10).release == [1]

    def test_a_moved_camera_is_released_and_taken_by_the_target_only(self) -> None:
        held = snapshot({"a": 1, "b": 1, "c": 1}, {1: "a"}, moves={1: "c"})
        assert plan("a", held, {1}, stale_after_s=10).release == [1]
        free = snapshot({"a": 1, "b": 1, "c": 1}, {1: None}, moves={1: "c"})
        assert [plan(n, free, set(), stale_after_s=10).take for n in "abc"] == [[], [], [1]]

    def test_a_camera_moved_here_by_hand_is_not_rebalanced_away(self) -> None:
        # b holds 3 of 4 after camera 4 was moved to it: rebalance gives back another one, never 4
        snap = snapshot({"a": 1, "b": 1}, {1: "a", 2: "b", 3: "b", 4: "b"})
        assert plan("b", snap, {2, 3, 4}, stale_after_s=10, keep=frozenset({4})).release == [3]


class TestRebalance:
    def test_an_overloaded_node_gives_back_at_most_two_per_period(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {cid: "a" for cid in range(1, 9)})
        assert len(plan("a", snap, set(range(1, 9)), stale_after_s=10).release) == 2

    def test_within_one_camera_of_the_ideal_nothing_moves(self) -> None:
        snap = snapshot({"a": 1, "b": 1}, {1: "a", 2: "a", 3: "a", 4: "b", 5: "b"})
        assert plan("a", snap, {1, 2, 3}, stale_after_s=10).release == []
        snap = snapshot({"a": 1, "b": 1, "c": 1}, {1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "c", 7: "c"})
        assert plan("a", snap, {1, 2, 3}, stale_after_s=10).release == []

    def test_more_than_one_above_the_ideal_gives_back_down_to_it(self) -> None:
        # 7 cameras on 3 nodes: ideal 2.33; 4 is 1.67 above it -> one goes (3 is within one)
        snap = snapshot({"a": 1, "b": 1, "c": 1}, {1: "a", 2: "a", 3: "a", 4: "a", 5: "b", 6: "b", 7: "c"})
        assert plan("a", snap, {1, 2, 3, 4}, stale_after_s=10).release == [4]

    def test_within_one_of_the_ideal_one_goes_to_a_node_two_lighter(self) -> None:
        # 9 cameras on 3 nodes, 3/4/2 after a node came back: the 4 gives one; then 3/3/3 stays
        owners = {**dict.fromkeys(range(1, 4), "a"), **dict.fromkeys(range(4, 8), "b"), 8: "c", 9: "c"}
        snap = snapshot({"a": 1, "b": 1, "c": 1}, owners)
        assert plan("b", snap, set(range(4, 8)), stale_after_s=10).release == [7]
        assert plan("a", snap, set(range(1, 4)), stale_after_s=10).release == []
        owners[7] = "c"
        snap = snapshot({"a": 1, "b": 1, "c": 1}, owners)
        for node in "abc":
            held = {cid for cid, n in owners.items() if n == node}
            assert plan(node, snap, held, stale_after_s=10).release == []

    def test_pinned_cameras_are_never_rebalanced_away(self) -> None:
        snap = snapshot(
            {"a": 1, "b": 1}, {1: "a", 2: "a", 3: "a", 4: "a"}, pinned={1: "a", 2: "a", 3: "a", 4: "a"}
        )
        assert plan("a", snap, {1, 2, 3, 4}, stale_after_s=10).release == []
