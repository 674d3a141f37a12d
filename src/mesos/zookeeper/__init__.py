"""ZooKeeper for high availability: URLs, master election and leader detection.

* :func:`parse_zk_url` / :func:`parse_master` read ``--zk`` and ``--master``.
* :class:`MasterContender` joins the masters' group and says whether this master leads.
* :class:`MasterDetector` follows the leading master (its MasterInfo, or None).

The registry's ZooKeeper backend is :class:`mesos.state.zookeeper.ZooKeeperStorage`.
"""

from mesos.zookeeper.contender import MasterContender
from mesos.zookeeper.detector import MasterDetector
from mesos.zookeeper.group import DEFAULT_SESSION_TIMEOUT, leader_of, make_client, parse_member
from mesos.zookeeper.url import ZkUrl, parse_master, parse_zk_url

__all__ = [
    "DEFAULT_SESSION_TIMEOUT",
    "MasterContender",
    "MasterDetector",
    "ZkUrl",
    "leader_of",
    "make_client",
    "parse_master",
    "parse_member",
    "parse_zk_url",
]
