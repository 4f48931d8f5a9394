"""Builders of source records in the shapes the sources deliver.

The shapes follow the bundled ``eks-imds-pivot`` sample: CloudTrail records as in an S3
log file, Falco alerts as falcosidekick forwards them (``json_output`` with
``append_output``), GCP audit LogEntries, ``aws ec2 describe-instances`` reservations
and ``kubectl get pods -o json`` items. Each builder returns a JSON object as a dict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pivotwatch.bench.fleet import Account, Node, Pod

__all__ = [
    "cloudtrail_time",
    "ec2_reservation",
    "falco_alert",
    "gcp_entry",
    "kubectl_pod",
    "node_session_identity",
    "user_identity",
    "web_identity_user",
]

JsonObject = dict[str, Any]

# When every node and pod of the simulated fleet was started.
FLEET_CREATED = "2026-11-12T04:17:36+00:00"
POD_CREATED = "2026-11-24T10:05:12Z"


def cloudtrail_time(time: datetime) -> str:
    """CloudTrail ``eventTime``: UTC to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_session_identity(node: Node, delivery: str) -> JsonObject:
    """The ``userIdentity`` of a node's instance-profile session."""
    return {
        "type": "AssumedRole",
        "principalId": f"{node.role_id}:{node.instance_id}",
        "arn": f"arn:aws:sts::{node.account}:assumed-role/{node.role}/{node.instance_id}",
        "accountId": node.account,
        "accessKeyId": node.access_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": node.role_id,
                "arn": f"arn:aws:iam::{node.account}:role/{node.role}",
                "accountId": node.account,
                "userName": node.role,
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-30T07:31:22Z", "mfaAuthenticated": "false"},
            "ec2RoleDelivery": delivery,
        },
    }


def user_identity(account: Account, user: str) -> JsonObject:
    """The ``userIdentity`` of an IAM user signed in to the console."""
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + user.upper().replace(".", "")[:8].ljust(8, "X") + "EXAMPLE",
        "arn": f"arn:aws:iam::{account.id}:user/{user}",
        "accountId": account.id,
        "accessKeyId": "ASIA" + user.upper().replace(".", "")[:8].ljust(8, "X") + "CONSOLE1",
        "userName": user,
        "sessionContext": {
            "attributes": {"creationDate": "2026-11-30T07:57:03Z", "mfaAuthenticated": "true"}
        },
    }


def web_identity_user(account: Account, namespace: str, service_account: str) -> JsonObject:
    """The ``userIdentity`` of an IRSA token exchange (``AssumeRoleWithWebIdentity``)."""
    provider = f"arn:aws:iam::{account.id}:oidc-provider/{account.oidc_provider}"
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    return {
        "type": "WebIdentityUser",
        "principalId": f"{provider}:sts.amazonaws.com:{subject}",
        "userName": subject,
        "identityProvider": provider,
    }


def cloudtrail_record(
    *,
    identity: JsonObject,
    time: datetime,
    event_id: str,
    request_id: str,
    source: str,
    name: str,
    region: str,
    address: str,
    user_agent: str,
    request: JsonObject | None,
    response: JsonObject | None = None,
    read_only: bool = True,
    account: str,
    category: str = "Management",
    error_code: str | None = None,
) -> JsonObject:
    """One CloudTrail record as written in a log file."""
    record: JsonObject = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": cloudtrail_time(time),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": address,
        "userAgent": user_agent,
        "requestParameters": request,
        "responseElements": response,
        "requestID": request_id,
        "eventID": event_id,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": category == "Management",
        "recipientAccountId": account,
        "eventCategory": category,
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com",
        },
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = f"User is not authorized to perform: {source.split('.')[0]}:{name}"
    return record


def falco_alert(
    *,
    pod: Pod,
    time: datetime,
    uuid: str,
    rule: str,
    priority: str,
    message: str,
    command: str,
    process: str,
    parent: str,
    tags: list[str],
    extra_fields: JsonObject | None = None,
) -> JsonObject:
    """One Falco alert in ``json_output`` form, with container and Kubernetes fields."""
    container_id = pod.container_id[:12]
    repository, _, tag = pod.image.rpartition(":")
    clock = time.strftime("%H:%M:%S.%f") + "000"
    output_fields: JsonObject = {
        "container.id": container_id,
        "container.image.repository": repository,
        "container.image.tag": tag,
        "container.name": pod.app,
        "evt.time": int(time.timestamp() * 1_000_000) * 1000,
        "evt.type": "execve",
        "k8s.cluster.name": pod.node.cluster,
        "k8s.ns.name": pod.namespace,
        "k8s.pod.name": pod.name,
        "proc.cmdline": command,
        "proc.exepath": f"/usr/bin/{process}",
        "proc.name": process,
        "proc.pname": parent,
        "user.loginuid": -1,
        "user.name": "root",
        "user.uid": 0,
    }
    if extra_fields:
        output_fields.update(extra_fields)
    output = (
        f"{clock}: {priority} {message} | user=root user_uid=0 process={process} parent={parent} "
        f"command={command} container_id={container_id} container_name={pod.app} "
        f"container_image_repository={repository} container_image_tag={tag} "
        f"k8s_pod_name={pod.name} k8s_ns_name={pod.namespace}"
    )
    return {
        "uuid": uuid,
        "output": output,
        "priority": priority,
        "rule": rule,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        "output_fields": output_fields,
        "source": "syscall",
        "tags": tags,
        "hostname": pod.node.hostname,
    }


def gcp_entry(
    *,
    project: str,
    time: datetime,
    insert_id: str,
    principal: str,
    caller_ip: str,
    user_agent: str,
    service: str,
    method: str,
    resource_name: str,
    resource_type: str,
    permission: str,
) -> JsonObject:
    """One Cloud Audit Logs LogEntry (Admin Activity or Data Access)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "insertId": insert_id,
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2Fdata_access",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "status": {},
            "authenticationInfo": {"principalEmail": principal},
            "authorizationInfo": [
                {
                    "granted": True,
                    "permission": permission,
                    "resource": resource_name,
                    "resourceAttributes": {},
                }
            ],
            "methodName": method,
            "requestMetadata": {
                "callerIp": caller_ip,
                "callerSuppliedUserAgent": user_agent,
                "requestAttributes": {"time": stamp, "auth": {}},
                "destinationAttributes": {},
            },
            "resourceName": resource_name,
            "serviceName": service,
        },
        "receiveTimestamp": stamp,
        "resource": {"labels": {"project_id": project}, "type": resource_type},
        "severity": "INFO",
        "timestamp": stamp,
    }


def ec2_reservation(node: Node, reservation_id: str) -> JsonObject:
    """One ``describe-instances`` reservation holding the node's instance."""
    public_dns = f"ec2-{node.public_ip.replace('.', '-')}.{node.region}.compute.amazonaws.com"
    association = {"IpOwnerId": "amazon", "PublicDnsName": public_dns, "PublicIp": node.public_ip}
    instance = {
        "AmiLaunchIndex": 0,
        "ImageId": "ami-07d3b8e2c1f94a6b0",
        "InstanceId": node.instance_id,
        "InstanceType": "m6i.large",
        "LaunchTime": FLEET_CREATED,
        "Placement": {"AvailabilityZone": f"{node.region}a", "GroupName": "", "Tenancy": "default"},
        "PrivateDnsName": node.hostname,
        "PrivateIpAddress": node.private_ip,
        "PublicDnsName": public_dns,
        "PublicIpAddress": node.public_ip,
        "State": {"Code": 16, "Name": "running"},
        "SubnetId": "subnet-07a3c9e1b5d2f4068",
        "VpcId": "vpc-0c2e8a4f61b9d7305",
        "Architecture": "x86_64",
        "IamInstanceProfile": {
            "Arn": f"arn:aws:iam::{node.account}:instance-profile/{node.cluster}-node-profile",
            "Id": "AIPAEMZUMLENMWFQTRIER",
        },
        "NetworkInterfaces": [
            {
                "Association": association,
                "Attachment": {"DeviceIndex": 0, "Status": "attached", "NetworkCardIndex": 0},
                "Groups": [
                    {
                        "GroupName": f"eks-cluster-sg-{node.cluster}",
                        "GroupId": "sg-0f4b7d29c8e3a1065",
                    }
                ],
                "NetworkInterfaceId": "eni-292521cac6c993027",
                "OwnerId": node.account,
                "PrivateDnsName": node.hostname,
                "PrivateIpAddress": node.private_ip,
                "PrivateIpAddresses": [
                    {
                        "Association": association,
                        "Primary": True,
                        "PrivateDnsName": node.hostname,
                        "PrivateIpAddress": node.private_ip,
                    }
                ],
                "Status": "in-use",
                "InterfaceType": "interface",
            }
        ],
        "SecurityGroups": [
            {"GroupName": f"eks-cluster-sg-{node.cluster}", "GroupId": "sg-0f4b7d29c8e3a1065"}
        ],
        "Tags": [
            {"Key": "eks:cluster-name", "Value": node.cluster},
            {"Key": "eks:nodegroup-name", "Value": "ng-general"},
            {"Key": f"kubernetes.io/cluster/{node.cluster}", "Value": "owned"},
        ],
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": "optional",
            "HttpPutResponseHopLimit": 2,
            "HttpEndpoint": "enabled",
        },
    }
    return {
        "Groups": [],
        "Instances": [instance],
        "OwnerId": node.account,
        "ReservationId": reservation_id,
    }


def kubectl_pod(pod: Pod, uid: str) -> JsonObject:
    """One pod as ``kubectl get pods -A -o json`` lists it."""
    node = pod.node
    network, _, last = node.private_ip.rpartition(".")
    pod_ip = node.private_ip if pod.host_network else f"{network}.{(int(last) + 100) % 250}"
    service_account = f"{pod.namespace}-{pod.app}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": POD_CREATED,
            "labels": {"app.kubernetes.io/name": pod.app},
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": uid,
        },
        "spec": {
            "containers": [{"image": pod.image, "name": pod.app}],
            "hostNetwork": pod.host_network,
            "nodeName": node.hostname,
            "serviceAccount": service_account,
            "serviceAccountName": service_account,
        },
        "status": {
            "containerStatuses": [
                {
                    "containerID": f"containerd://{pod.container_id}",
                    "image": pod.image,
                    "name": pod.app,
                    "ready": True,
                    "started": True,
                    "state": {"running": {"startedAt": POD_CREATED}},
                }
            ],
            "hostIP": node.private_ip,
            "phase": "Running",
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": POD_CREATED,
        },
    }
