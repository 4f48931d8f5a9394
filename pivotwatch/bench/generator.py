"""A seeded load generator: routine cloud and runtime activity with attack chains in it.

`LoadGenerator` simulates many AWS accounts (one EKS cluster each) and GCP projects,
and writes what their sources would deliver: CloudTrail records, Falco alerts, GCP
audit LogEntries, and the inventory (EC2 reservations and pods) that links them. Most
records are routine: node agents using the node role from the node's own address with
``ec2RoleDelivery`` 2.0, console users reading from the office, CI jobs exchanging an
IRSA token and pushing artifacts, operators opening shells, a log shipper reading the
instance metadata service. At a configurable rate it plants an attack chain: a Falco
IMDS contact from a pod, then that node's role session used from an outside address
for discovery (``GetCallerIdentity``), data theft (``GetObject``) and ``StopLogging``.

Every record is returned encoded, with its Kafka key, ready to produce. The same
`GeneratorConfig` (seed included) gives the same bytes in the same order.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pivotwatch.bench import shapes
from pivotwatch.bench.fleet import Account, Fleet, GcpProject, Node, Pod, build_fleet, hex_digits
from pivotwatch.errors import ConfigurationError
from pivotwatch.schemas.event import Source

__all__ = ["GeneratedRecord", "GeneratorConfig", "LoadGenerator", "PlantedChain"]

JsonObject = dict[str, Any]

ATTACKER_NETWORK = "198.51.100"
CLI_AGENT = (
    "aws-cli/2.22.35 md/awscrt#0.23.8 ua/2.0 os/linux#6.8.0-49-generic md/arch#x86_64 "
    "lang/python#3.12.9"
)
CONSOLE_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
CNI_AGENT = (
    "aws-sdk-go-v2/1.32.6 os/linux lang/go#1.22.9 md/GOOS#linux api/ec2#1.187.0 "
    "amazon-vpc-cni-k8s/v1.19.0-eksbuild.1"
)
SSM_AGENT = "aws-sdk-go/1.55.5 (go1.22.8; linux; amd64) amazon-ssm-agent/3.3.1142.0"
ECR_AGENT = "aws-sdk-go-v2/1.32.6 os/linux lang/go#1.22.9 api/ecr#1.36.7 ecr-credential-provider"
GCLOUD_AGENT = (
    "google-cloud-sdk gcloud/502.0.0 command/gcloud.storage.ls invocation-id/0 environment/None"
)
NODE_AGENT_GCP = "google-api-go-client/0.5 gke-metadata-server"


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to simulate; every field has a default that suits a benchmark run."""

    seed: int = 20261130
    accounts: int = 40
    nodes_per_account: int = 8
    pods_per_node: int = 6
    gcp_projects: int = 10
    chains_per_100k: float = 20.0
    """Attack chains started per 100,000 records, on average."""
    event_rate: float = 2000.0
    """Records per second of event time: how fast the simulated clock runs."""
    chain_step_seconds: float = 2.0
    """Event time between the steps of an attack chain."""
    cloudtrail_share: float = 0.7
    gcp_share: float = 0.2
    """The rest of the routine records are Falco alerts."""
    start: datetime = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    def validate(self) -> None:
        """Raise ConfigurationError on a value the generator cannot use."""
        if self.event_rate <= 0:
            raise ConfigurationError(
                f"event_rate is {self.event_rate}: expected records per second above 0"
            )
        if not 0 <= self.chains_per_100k <= 10_000:
            raise ConfigurationError(
                f"chains_per_100k is {self.chains_per_100k}: expected 0 to 10000"
            )
        if (
            self.cloudtrail_share < 0
            or self.gcp_share < 0
            or self.cloudtrail_share + self.gcp_share > 1
        ):
            raise ConfigurationError(
                f"cloudtrail_share {self.cloudtrail_share} and gcp_share {self.gcp_share}: "
                "expected two shares from 0 to 1 whose sum is at most 1"
            )
        if self.gcp_share > 0 and self.gcp_projects < 1:
            raise ConfigurationError(
                f"gcp_share is {self.gcp_share} but gcp_projects is {self.gcp_projects}: "
                "expected 1 or more"
            )


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    """One record ready to produce to the raw topic of ``source``."""

    source: Source
    key: bytes
    value: bytes
    event_id: str
    time: datetime
    chain: int | None = None
    """Index of the planted chain this record is evidence of, else None."""
    closes_chain: bool = False
    """True for the last evidence record of a planted chain."""


@dataclass(frozen=True, slots=True)
class PlantedChain:
    """An attack chain hidden in the load, as the correlator should report it."""

    index: int
    account: str
    namespace: str
    pod: str
    identity: str
    """ARN of the node role session that the attacker used."""
    attacker_ip: str
    event_ids: tuple[str, ...]
    """Falco uuid and CloudTrail eventIDs, in the order they were written."""


@dataclass(order=True)
class _Scheduled:
    time: datetime
    sequence: int
    chain: int = field(compare=False)
    build: Callable[[datetime], GeneratedRecord] = field(compare=False)


class LoadGenerator:
    """Writes the inventory and an endless, seeded stream of records about one fleet."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = config or GeneratorConfig()
        self.config.validate()
        self._rng = random.Random(self.config.seed)
        self.fleet: Fleet = build_fleet(
            self._rng,
            self.config.accounts,
            self.config.nodes_per_account,
            self.config.pods_per_node,
            self.config.gcp_projects,
        )
        self.chains: list[PlantedChain] = []
        self._clock = self.config.start
        self._step = timedelta(seconds=1 / self.config.event_rate)
        self._pending: list[_Scheduled] = []
        self._sequence = 0
        self._ci_sessions: dict[str, str] = {}
        self._routine = self._routine_makers()

    # Public surface.

    def cluster_accounts(self) -> dict[str, str]:
        """Return the cluster-to-account map that a deployment would put in settings."""
        return {account.cluster: account.id for account in self.fleet.accounts}

    def inventory(self) -> list[GeneratedRecord]:
        """Return the EC2 reservations and pods of every account, reservations first."""
        records: list[GeneratedRecord] = []
        for account in self.fleet.accounts:
            key = account.id.encode()
            for node in account.nodes:
                reservation = shapes.ec2_reservation(node, "r-" + hex_digits(self._rng, 17))
                records.append(
                    self._encode(
                        Source.INVENTORY, key, reservation, node.instance_id, self.config.start
                    )
                )
            for pod in account.pods:
                document = shapes.kubectl_pod(pod, self._uuid())
                records.append(
                    self._encode(Source.INVENTORY, key, document, pod.name, self.config.start)
                )
        return records

    def records(self, count: int) -> Iterator[GeneratedRecord]:
        """Yield ``count`` records in event-time order, chains planted among routine ones.

        A chain started near the end may be cut off: its later steps are not yielded
        and it stays in `chains` without its closing record. Call again to continue the
        same stream.
        """
        chance = self.config.chains_per_100k / 100_000
        for _ in range(count):
            self._clock += self._step
            if self._pending and self._pending[0].time <= self._clock:
                yield heapq.heappop(self._pending).build(self._clock)
                continue
            if chance and self._rng.random() < chance:
                yield self._plant_chain()
                continue
            yield self._routine_record()

    def complete_chains(self) -> list[PlantedChain]:
        """Return the planted chains whose every record has been yielded."""
        open_chains = {item.chain for item in self._pending}
        return [chain for chain in self.chains if chain.index not in open_chains]

    # Encoding.

    def _encode(
        self,
        source: Source,
        key: bytes,
        record: JsonObject,
        event_id: str,
        time: datetime,
        chain: int | None = None,
        closes: bool = False,
    ) -> GeneratedRecord:
        return GeneratedRecord(
            source=source,
            key=key,
            value=orjson.dumps(record),
            event_id=event_id,
            time=time,
            chain=chain,
            closes_chain=closes,
        )

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # Routine activity.

    def _routine_makers(self) -> list[tuple[float, Callable[[], GeneratedRecord]]]:
        config = self.config
        aws_share = config.cloudtrail_share
        falco_share = 1 - config.cloudtrail_share - config.gcp_share
        makers: list[tuple[float, Callable[[], GeneratedRecord]]] = [
            (aws_share * 0.55, self._node_agent_call),
            (aws_share * 0.25, self._console_call),
            (aws_share * 0.20, self._ci_call),
            (config.gcp_share, self._gcp_call),
            (falco_share * 0.5, self._log_shipper_imds),
            (falco_share * 0.3, self._operator_shell),
            (falco_share * 0.2, self._package_install),
        ]
        return [(weight, maker) for weight, maker in makers if weight > 0]

    def _routine_record(self) -> GeneratedRecord:
        roll = self._rng.random() * sum(weight for weight, _ in self._routine)
        for weight, maker in self._routine:
            roll -= weight
            if roll <= 0:
                return maker()
        return self._routine[-1][1]()

    def _account(self) -> Account:
        return self._rng.choice(self.fleet.accounts)

    def _cloudtrail(
        self,
        account: Account,
        record: JsonObject,
        event_id: str,
        chain: int | None = None,
        closes: bool = False,
    ) -> GeneratedRecord:
        return self._encode(
            Source.CLOUDTRAIL, account.id.encode(), record, event_id, self._clock, chain, closes
        )

    def _node_agent_call(self) -> GeneratedRecord:
        account = self._account()
        node = self._rng.choice(account.nodes)
        source, name, agent, request, read_only = self._rng.choice(
            (
                (
                    "ec2.amazonaws.com",
                    "DescribeNetworkInterfaces",
                    CNI_AGENT,
                    {
                        "filterSet": {
                            "items": [
                                {
                                    "name": "attachment.instance-id",
                                    "valueSet": {"items": [{"value": node.instance_id}]},
                                }
                            ]
                        }
                    },
                    True,
                ),
                (
                    "ssm.amazonaws.com",
                    "UpdateInstanceInformation",
                    SSM_AGENT,
                    {
                        "instanceId": node.instance_id,
                        "agentVersion": "3.3.1142.0",
                        "agentStatus": "Active",
                        "platformType": "Linux",
                        "iPAddress": node.private_ip,
                        "computerName": node.hostname,
                    },
                    False,
                ),
                (
                    "ecr.amazonaws.com",
                    "GetAuthorizationToken",
                    ECR_AGENT,
                    {"registryIds": [account.id]},
                    True,
                ),
            )
        )
        event_id = self._uuid()
        record = shapes.cloudtrail_record(
            identity=shapes.node_session_identity(node, "2.0"),
            time=self._clock,
            event_id=event_id,
            request_id=self._uuid(),
            source=source,
            name=name,
            region=node.region,
            address=node.public_ip,
            user_agent=agent,
            request=request,
            read_only=read_only,
            account=account.id,
        )
        return self._cloudtrail(account, record, event_id)

    def _console_call(self) -> GeneratedRecord:
        account = self._account()
        user = self._rng.choice(account.users)
        source, name, request = self._rng.choice(
            (
                (
                    "ec2.amazonaws.com",
                    "DescribeInstances",
                    {"instancesSet": {}, "filterSet": {}, "maxResults": 50},
                ),
                ("eks.amazonaws.com", "DescribeCluster", {"name": account.cluster}),
                ("eks.amazonaws.com", "ListNodegroups", {"clusterName": account.cluster}),
                (
                    "s3.amazonaws.com",
                    "GetBucketLocation",
                    {"bucketName": account.buckets[1], "location": ""},
                ),
                (
                    "cloudwatch.amazonaws.com",
                    "GetMetricData",
                    {"startTime": "2026-11-30T07:00:00Z", "endTime": "2026-11-30T08:00:00Z"},
                ),
            )
        )
        event_id = self._uuid()
        record = shapes.cloudtrail_record(
            identity=shapes.user_identity(account, user),
            time=self._clock,
            event_id=event_id,
            request_id=self._uuid(),
            source=source,
            name=name,
            region=account.region,
            address=account.office_ip,
            user_agent=CONSOLE_AGENT,
            request=request,
            account=account.id,
        )
        return self._cloudtrail(account, record, event_id)

    def _ci_call(self) -> GeneratedRecord:
        """A CI job's call: one in five exchanges the IRSA token, the others use the session."""
        account = self._account()
        runner = next(node for node in account.nodes)
        session = self._ci_sessions.get(account.id)
        event_id = self._uuid()
        if session is None or self._rng.random() < 0.2:
            return self._ci_token_exchange(account, runner, event_id)
        key_id, session_name = session.split("/")
        provider = f"arn:aws:iam::{account.id}:oidc-provider/{account.oidc_provider}"
        identity = {
            "type": "AssumedRole",
            "principalId": f"AROA3BAWIFHGC4XSSA7CD:{session_name}",
            "arn": f"arn:aws:sts::{account.id}:assumed-role/{account.ci_role}/{session_name}",
            "accountId": account.id,
            "accessKeyId": key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROA3BAWIFHGC4XSSA7CD",
                    "arn": f"arn:aws:iam::{account.id}:role/{account.ci_role}",
                    "accountId": account.id,
                    "userName": account.ci_role,
                },
                "webIdFederationData": {
                    "federatedProvider": provider,
                    "attributes": {},
                },
                "attributes": {"creationDate": "2026-11-30T07:30:05Z", "mfaAuthenticated": "false"},
            },
        }
        build = self._rng.randrange(1000, 9999)
        record = shapes.cloudtrail_record(
            identity=identity,
            time=self._clock,
            event_id=event_id,
            request_id=hex_digits(self._rng, 16).upper(),
            source="s3.amazonaws.com",
            name="PutObject",
            region=account.region,
            address=runner.public_ip,
            user_agent=CLI_AGENT + " md/command#s3.cp",
            read_only=False,
            account=account.id,
            category="Data",
            request={
                "bucketName": account.buckets[1],
                "Host": f"{account.buckets[1]}.s3.{account.region}.amazonaws.com",
                "key": f"builds/shop-catalog/{build}/sbom.spdx.json",
            },
            response={"x-amz-server-side-encryption": "AES256"},
        )
        return self._cloudtrail(account, record, event_id)

    def _ci_token_exchange(self, account: Account, runner: Node, event_id: str) -> GeneratedRecord:
        session_name = f"botocore-session-{self._rng.randrange(10**9, 10**10)}"
        key_id = "ASIA" + hex_digits(self._rng, 16).upper()
        self._ci_sessions[account.id] = f"{key_id}/{session_name}"
        response = {
            "credentials": {"accessKeyId": key_id, "expiration": "Nov 30, 2026, 9:30:05 AM"},
            "subjectFromWebIdentityToken": "system:serviceaccount:ci:ci-runner",
            "assumedRoleUser": {
                "assumedRoleId": f"AROA3BAWIFHGC4XSSA7CD:{session_name}",
                "arn": f"arn:aws:sts::{account.id}:assumed-role/{account.ci_role}/{session_name}",
            },
            "provider": f"arn:aws:iam::{account.id}:oidc-provider/{account.oidc_provider}",
            "audience": "sts.amazonaws.com",
        }
        record = shapes.cloudtrail_record(
            identity=shapes.web_identity_user(account, "ci", "ci-runner"),
            time=self._clock,
            event_id=event_id,
            request_id=self._uuid(),
            source="sts.amazonaws.com",
            name="AssumeRoleWithWebIdentity",
            region=account.region,
            address=runner.public_ip,
            user_agent=CLI_AGENT + " md/command#ecr.get-login-password",
            request={
                "roleArn": f"arn:aws:iam::{account.id}:role/{account.ci_role}",
                "roleSessionName": session_name,
            },
            response=response,
            account=account.id,
        )
        return self._cloudtrail(account, record, event_id)

    def _gcp_call(self) -> GeneratedRecord:
        project: GcpProject = self._rng.choice(self.fleet.projects)
        insert_id = hex_digits(self._rng, 12)
        if self._rng.random() < 0.6:
            principal, address, agent = (
                project.node_service_account,
                self._rng.choice(project.node_ips),
                NODE_AGENT_GCP,
            )
            service, method, permission = (
                "compute.googleapis.com",
                "v1.compute.instances.get",
                "compute.instances.get",
            )
            resource = (
                f"projects/{project.id}/zones/us-central1-a/instances/gke-node-{insert_id[:4]}"
            )
            resource_type = "gce_instance"
        else:
            principal, address, agent = (
                self._rng.choice(project.users),
                project.office_ip,
                GCLOUD_AGENT,
            )
            service, method, permission = (
                "storage.googleapis.com",
                "storage.objects.list",
                "storage.objects.list",
            )
            resource = f"projects/_/buckets/{project.id}-reports"
            resource_type = "gcs_bucket"
        entry = shapes.gcp_entry(
            project=project.id,
            time=self._clock,
            insert_id=insert_id,
            principal=principal,
            caller_ip=address,
            user_agent=agent,
            service=service,
            method=method,
            resource_name=resource,
            resource_type=resource_type,
            permission=permission,
        )
        return self._encode(Source.GCP_AUDIT, project.id.encode(), entry, insert_id, self._clock)

    def _falco(
        self, pod: Pod, record: JsonObject, event_id: str, chain: int | None = None
    ) -> GeneratedRecord:
        return self._encode(
            Source.FALCO, pod.node.cluster.encode(), record, event_id, self._clock, chain
        )

    def _pod(self, account: Account, app: str | None = None, business: bool = False) -> Pod:
        pods = [
            pod
            for pod in account.pods
            if (app is None or pod.app == app) and (not business or not pod.host_network)
        ]
        return self._rng.choice(pods)

    def _log_shipper_imds(self) -> GeneratedRecord:
        """fluent-bit (host network) refreshing the node role's credentials from IMDS."""
        pod = self._pod(self._account(), app="fluent-bit")
        uuid_text = self._uuid()
        alert = shapes.falco_alert(
            pod=pod,
            time=self._clock,
            uuid=uuid_text,
            rule="Contact EC2 Instance Metadata Service From Container",
            priority="Notice",
            message="Outbound connection to EC2 instance metadata service",
            command="/fluent-bit/bin/fluent-bit -c /fluent-bit/etc/fluent-bit.conf",
            process="fluent-bit",
            parent="containerd-shim",
            tags=[
                "T1552.005",
                "aws",
                "container",
                "maturity_incubating",
                "mitre_credential_access",
                "network",
            ],
            extra_fields={"evt.type": "connect", "fd.rip": "169.254.169.254", "fd.rport": 80},
        )
        return self._falco(pod, alert, uuid_text)

    def _operator_shell(self) -> GeneratedRecord:
        pod = self._pod(self._account(), business=True)
        uuid_text = self._uuid()
        alert = shapes.falco_alert(
            pod=pod,
            time=self._clock,
            uuid=uuid_text,
            rule="Terminal shell in container",
            priority="Notice",
            message="A shell was spawned in a container with an attached terminal",
            command="bash",
            process="bash",
            parent="runc",
            tags=["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
            extra_fields={"proc.tty": 34816},
        )
        return self._falco(pod, alert, uuid_text)

    def _package_install(self) -> GeneratedRecord:
        pod = self._pod(self._account(), business=True)
        uuid_text = self._uuid()
        alert = shapes.falco_alert(
            pod=pod,
            time=self._clock,
            uuid=uuid_text,
            rule="Launch Package Management Process in Container",
            priority="Error",
            message="Package management process launched in container",
            command="apt-get install -y dnsutils",
            process="apt-get",
            parent="bash",
            tags=[
                "T1505",
                "container",
                "maturity_incubating",
                "mitre_persistence",
                "process",
                "software_mgmt",
            ],
        )
        return self._falco(pod, alert, uuid_text)

    # Attack chains.

    def _plant_chain(self) -> GeneratedRecord:
        """Start a chain: write its IMDS contact now and schedule its cloud calls."""
        account = self._account()
        pod = self._pod(account, business=True)
        node = pod.node
        attacker_ip = f"{ATTACKER_NETWORK}.{self._rng.randrange(1, 255)}"
        index = len(self.chains)
        imds_id = self._uuid()
        calls = [
            ("sts.amazonaws.com", "GetCallerIdentity", None, True),
            (
                "s3.amazonaws.com",
                "GetObject",
                {"bucketName": account.buckets[0], "key": "db/2026-11-30.sql.gz"},
                True,
            ),
            (
                "cloudtrail.amazonaws.com",
                "StopLogging",
                {"name": f"arn:aws:cloudtrail:{account.region}:{account.id}:trail/{account.trail}"},
                False,
            ),
        ]
        call_ids = [self._uuid() for _ in calls]
        identity = shapes.node_session_identity(node, "1.0")
        self.chains.append(
            PlantedChain(
                index=index,
                account=account.id,
                namespace=pod.namespace,
                pod=pod.name,
                identity=identity["arn"],
                attacker_ip=attacker_ip,
                event_ids=(imds_id, *call_ids),
            )
        )
        step = timedelta(seconds=self.config.chain_step_seconds)
        for number, ((source, name, request, read_only), event_id) in enumerate(
            zip(calls, call_ids, strict=True), start=1
        ):
            closes = number == len(calls)

            def build(
                time: datetime,
                source: str = source,
                name: str = name,
                request: JsonObject | None = request,
                read_only: bool = read_only,
                event_id: str = event_id,
                closes: bool = closes,
            ) -> GeneratedRecord:
                record = shapes.cloudtrail_record(
                    identity=identity,
                    time=time,
                    event_id=event_id,
                    request_id=self._uuid(),
                    source=source,
                    name=name,
                    region=node.region,
                    address=attacker_ip,
                    user_agent=CLI_AGENT,
                    request=request,
                    read_only=read_only,
                    account=account.id,
                    category="Data" if name == "GetObject" else "Management",
                )
                return self._cloudtrail(account, record, event_id, index, closes)

            self._sequence += 1
            heapq.heappush(
                self._pending, _Scheduled(self._clock + step * number, self._sequence, index, build)
            )
        alert = shapes.falco_alert(
            pod=pod,
            time=self._clock,
            uuid=imds_id,
            rule="Contact EC2 Instance Metadata Service From Container",
            priority="Notice",
            message="Outbound connection to EC2 instance metadata service",
            command=f"curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/{node.role}",
            process="curl",
            parent="bash",
            tags=[
                "T1552.005",
                "aws",
                "container",
                "maturity_incubating",
                "mitre_credential_access",
                "network",
            ],
            extra_fields={"evt.type": "connect", "fd.rip": "169.254.169.254", "fd.rport": 80},
        )
        return self._falco(pod, alert, imds_id, index)
