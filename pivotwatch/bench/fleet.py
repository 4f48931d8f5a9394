"""The simulated estate a load generator writes about: accounts, nodes, pods and people.

Every name comes from one seeded `random.Random`, so the same seed builds the same
fleet. Addresses are private (10.0.0.0/8) or from the RFC 5737 documentation ranges:
node public addresses are 192.0.2.0/24, offices are 203.0.113.0/24 and attackers are
198.51.100.0/24. Addresses repeat across accounts, which is harmless because every
account is its own correlation key.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from pivotwatch.errors import ConfigurationError

__all__ = ["Account", "Fleet", "GcpProject", "Node", "Pod", "build_fleet"]

MAX_NODES_PER_ACCOUNT = 250
"""Node public addresses are 192.0.2.1 to 192.0.2.250 within each account."""

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")

# (namespace, app, container image path, host network): the workloads every cluster runs.
APPLICATIONS = (
    ("checkout", "web", "checkout/web:3.8.2", False),
    ("ledger", "reconciler", "ledger/reconciler:1.12.0", False),
    ("catalog", "api", "catalog/api:5.1.0", False),
    ("search", "indexer", "search/indexer:2.4.7", False),
    ("payments", "gateway", "payments/gateway:7.0.3", False),
    ("ci", "runner", "ci/runner:2.311.0", False),
)
DAEMONS = (
    ("kube-system", "aws-node", "amazon-k8s-cni:v1.19.0-eksbuild.1", True),
    ("amazon-cloudwatch", "fluent-bit", "aws-for-fluent-bit:2.32.4", True),
)
USER_NAMES = ("priya.raman", "alice", "bob", "chen.wei", "fatima.ali", "jonas.berg", "maria.lopez")


@dataclass(frozen=True, slots=True)
class Node:
    """An EKS worker node: an EC2 instance with the cluster's node role."""

    account: str
    region: str
    cluster: str
    instance_id: str
    hostname: str
    private_ip: str
    public_ip: str
    role: str
    role_id: str
    access_key: str
    """Access key id of the node's current instance-profile session."""


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    app: str
    container_id: str
    """The full 64 hex digits; Falco shows the first 12."""
    image: str
    host_network: bool
    node: Node


@dataclass(frozen=True, slots=True)
class Account:
    """An AWS account with one EKS cluster, its nodes and pods, console users and CI."""

    id: str
    region: str
    cluster: str
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    users: tuple[str, ...]
    office_ip: str
    ci_role: str
    oidc_provider: str
    buckets: tuple[str, ...]
    trail: str


@dataclass(frozen=True, slots=True)
class GcpProject:
    """A GCP project with a GKE node service account and console users."""

    id: str
    node_service_account: str
    node_ips: tuple[str, ...]
    users: tuple[str, ...]
    office_ip: str


@dataclass(frozen=True, slots=True)
class Fleet:
    accounts: tuple[Account, ...]
    projects: tuple[GcpProject, ...]


def build_fleet(
    rng: random.Random, accounts: int, nodes_per_account: int, pods_per_node: int, projects: int
) -> Fleet:
    """Build ``accounts`` AWS accounts and ``projects`` GCP projects.

    Raises:
        ConfigurationError: a count is below 1, or ``nodes_per_account`` is above
            `MAX_NODES_PER_ACCOUNT`.
    """
    for name, value in (
        ("accounts", accounts),
        ("nodes_per_account", nodes_per_account),
        ("pods_per_node", pods_per_node),
    ):
        if value < 1:
            raise ConfigurationError(f"{name} is {value}: expected 1 or more")
    if nodes_per_account > MAX_NODES_PER_ACCOUNT:
        raise ConfigurationError(
            f"nodes_per_account is {nodes_per_account}: expected at most {MAX_NODES_PER_ACCOUNT}"
        )
    aws = tuple(
        _build_account(rng, index, nodes_per_account, pods_per_node) for index in range(accounts)
    )
    gcp = tuple(_build_project(rng, index) for index in range(max(projects, 0)))
    return Fleet(accounts=aws, projects=gcp)


def hex_digits(rng: random.Random, count: int) -> str:
    return f"{rng.getrandbits(4 * count):0{count}x}"


def _upper_id(rng: random.Random, count: int) -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "".join(rng.choice(alphabet) for _ in range(count))


def _lower_id(rng: random.Random, count: int) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(rng.choice(alphabet) for _ in range(count))


def _build_account(rng: random.Random, index: int, node_count: int, pods_per_node: int) -> Account:
    account_id = f"{rng.randrange(10**11, 10**12):012d}"
    region = REGIONS[index % len(REGIONS)]
    cluster = f"prod-{index:03d}"
    role = f"{cluster}-node-role"
    role_id = "AROA" + _upper_id(rng, 17)
    nodes = tuple(
        _build_node(rng, account_id, region, cluster, role, role_id, index, number)
        for number in range(node_count)
    )
    pods: list[Pod] = []
    for node in nodes:
        for namespace, app, image, host_network in DAEMONS:
            pods.append(
                _build_pod(rng, account_id, region, node, namespace, app, image, host_network)
            )
        for slot in range(pods_per_node):
            namespace, app, image, host_network = APPLICATIONS[(slot + index) % len(APPLICATIONS)]
            pods.append(
                _build_pod(rng, account_id, region, node, namespace, app, image, host_network)
            )
    users = tuple(rng.sample(USER_NAMES, 3))
    return Account(
        id=account_id,
        region=region,
        cluster=cluster,
        nodes=nodes,
        pods=tuple(pods),
        users=users,
        office_ip=f"203.0.113.{rng.randrange(1, 255)}",
        ci_role=f"{cluster}-ci-runner-irsa",
        oidc_provider=f"oidc.eks.{region}.amazonaws.com/id/{hex_digits(rng, 32).upper()}",
        buckets=(f"{cluster}-backups-{account_id}", f"{cluster}-ci-artifacts-{account_id}"),
        trail=f"{cluster}-audit",
    )


def _build_node(
    rng: random.Random,
    account: str,
    region: str,
    cluster: str,
    role: str,
    role_id: str,
    account_index: int,
    number: int,
) -> Node:
    private_ip = f"10.{account_index % 250}.{number // 200 + 1}.{number % 200 + 10}"
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return Node(
        account=account,
        region=region,
        cluster=cluster,
        instance_id="i-0" + hex_digits(rng, 16),
        hostname=f"ip-{private_ip.replace('.', '-')}.{domain}",
        private_ip=private_ip,
        public_ip=f"192.0.2.{number + 1}",
        role=role,
        role_id=role_id,
        access_key="ASIA" + _upper_id(rng, 16),
    )


def _build_pod(
    rng: random.Random,
    account: str,
    region: str,
    node: Node,
    namespace: str,
    app: str,
    image: str,
    host_network: bool,
) -> Pod:
    if namespace in ("kube-system", "amazon-cloudwatch"):
        name = f"{app}-{_lower_id(rng, 5)}"
        repository = f"602401143452.dkr.ecr.{region}.amazonaws.com/{image}"
    else:
        name = f"{app}-{hex_digits(rng, 9)}-{_lower_id(rng, 5)}"
        repository = f"{account}.dkr.ecr.{region}.amazonaws.com/{image}"
    return Pod(
        namespace=namespace,
        name=name,
        app=app,
        container_id=hex_digits(rng, 64),
        image=repository,
        host_network=host_network,
        node=node,
    )


def _build_project(rng: random.Random, index: int) -> GcpProject:
    project = f"analytics-{index:03d}-{rng.randrange(100000, 999999)}"
    return GcpProject(
        id=project,
        node_service_account=f"gke-nodes@{project}.iam.gserviceaccount.com",
        node_ips=tuple(f"192.0.2.{200 + number}" for number in range(4)),
        users=tuple(f"{name}@example.com" for name in rng.sample(USER_NAMES, 2)),
        office_ip=f"203.0.113.{rng.randrange(1, 255)}",
    )
