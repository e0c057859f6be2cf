"""Several ClusterMembers on one PostgreSQL with real camera pipelines (RTSP): spread, take-over after a
member stops renewing, self-fencing when the database is unreachable, rebalance without flapping."""

from __future__ import annotations

import pytest

from app.config import Settings
from tests.support.cluster_nodes import Cluster, until
from tests.support.rtsp import RtspServer
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.rtsp]


def spread(cluster: Cluster, sizes: list[int]) -> bool:
    return sorted(len(ids) for ids in cluster.placement().values()) == sorted(sizes)


class TestSpread:
    async def test_cameras_spread_over_the_members_each_on_one(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        # given
        a = await cluster.start("a")
        b = await cluster.start("b")
        # when
        ids = await cluster.add_cameras([cameras_rtsp.url(m) for m in range(1, 5)])
        # then
        await until(lambda: spread(cluster, [2, 2]), 20, "2 cameras on each member")
        assert a.running() | b.running() == set(ids)
        leases = await cluster.leases()
        assert {cid: node for cid, (node, _) in leases.items()} == {
            **{cid: "a" for cid in a.running()},
            **{cid: "b" for cid in b.running()},
        }
        assert a.manager.status(ids[0]).node == cluster.nodes["a"].member.owner(ids[0])
        assert cluster.overlaps == []

    async def test_single_node_settings_leave_the_cluster_off(self, tmp_path: object) -> None:
        settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[arg-type, call-arg]
        assert not settings.cluster
        with pytest.raises(ValueError, match="shared PostgreSQL"):
            Settings(_env_file=None, data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")  # type: ignore[arg-type, call-arg]


class TestTakeOver:
    async def test_a_member_that_stops_renewing_stops_its_cameras_before_another_takes_them(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        # given
        a = await cluster.start("a")
        b = await cluster.start("b")
        await cluster.add_cameras([cameras_rtsp.url(m) for m in range(1, 5)])
        await until(lambda: spread(cluster, [2, 2]), 20, "2 cameras on each member")
        tokens = await cluster.leases()
        # when: b hangs (alive, but never renews)
        b.member.pause()
        # then: b fences itself, a runs all four with new tokens, never one camera on both at once
        await until(lambda: not b.running() and len(a.running()) == 4, 30, "a runs all four")
        after = await cluster.leases()
        for cid in tokens:
            if tokens[cid][0] == "b":
                assert after[cid] == ("a", tokens[cid][1] + 1)
        assert cluster.overlaps == []
        # and when b renews again, it takes work back gradually, down to an even split
        b.member.pause(False)
        await until(lambda: spread(cluster, [2, 2]), 30, "back to 2 + 2")
        assert cluster.overlaps == []

    async def test_a_member_cut_off_from_the_database_fences_itself_and_rejoins(
        self, cluster: Cluster, cameras_rtsp: RtspServer, cluster_db_url: str
    ) -> None:
        # given: b reaches PostgreSQL only through a proxy
        proxy = await TcpProxy.start(5432)
        try:
            via_proxy = cluster_db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            a = await cluster.start("a")
            b = await cluster.start("b", database_url=via_proxy)
            await cluster.add_cameras([cameras_rtsp.url(m) for m in range(1, 5)])
            await until(lambda: spread(cluster, [2, 2]), 20, "2 cameras on each member")
            # when: the proxy goes (listener closed, connections reset)
            await proxy.cut()
            # then
            await until(lambda: not b.running(), 15, "b stopped its cameras")
            await until(lambda: len(a.running()) == 4, 30, "a runs all four")
            assert cluster.overlaps == []
            # and when the database is back, b rejoins and gets its share back
            await proxy.restore()
            await until(lambda: spread(cluster, [2, 2]), 40, "back to 2 + 2")
            assert cluster.overlaps == []
        finally:
            await proxy.aclose()


class TestRebalance:
    async def test_a_joining_member_gets_a_share_and_nothing_flaps(
        self, cluster: Cluster, cameras_rtsp: RtspServer
    ) -> None:
        # given: a alone with five cameras
        a = await cluster.start("a")
        await cluster.add_cameras([cameras_rtsp.url(m) for m in range(1, 6)])
        await until(lambda: len(a.running()) == 5, 20, "a runs all five")
        # when
        b = await cluster.start("b")
        # then: 3 + 2 (within one camera of the ideal 2.5), and it stays so
        await until(lambda: spread(cluster, [3, 2]), 30, "3 + 2")
        settled = await cluster.leases()
        await a.ticks(4)
        await b.ticks(4)
        assert await cluster.leases() == settled
        assert cluster.overlaps == []
