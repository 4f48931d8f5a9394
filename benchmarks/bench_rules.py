"""Measure Sigma rule matching speed for 10, 100 and 1,000 loaded rules.

Run: ``python benchmarks/bench_rules.py [--seconds 2] [--records 5000]``

Synthetic rules mimic real cloud and runtime rules: each requires one exact CloudTrail
``eventName``, GCP ``methodName`` or Falco ``rule`` out of a vocabulary of a few hundred,
and adds modifiers (``contains``, ``startswith``, ``re``, ``cidr``, ``null``, a ``not``
filter). Four rules without such a field (like the pattern rules of the bundled pack) are
in every set, so the fallback list does not grow with the set. Records are CloudTrail,
GCP audit and Falco records in their real shapes, with names drawn from the same
vocabulary. The script prints records per second and the per-record cost at 1,000 rules
relative to 10, by wall-clock and by process CPU time; it asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from pivotwatch.correlator.sigma import RuleSet
from pivotwatch.correlator.sigma.fields import RecordView
from pivotwatch.correlator.sigma.loader import FIELD_ROOTS
from pivotwatch.schemas.event import Source

SEED = 20261204
RULE_COUNTS = (10, 100, 1000)

AWS_SERVICES = (
    "iam",
    "s3",
    "ec2",
    "sts",
    "lambda",
    "kms",
    "secretsmanager",
    "ssm",
    "logs",
    "rds",
    "eks",
    "ecr",
    "cloudtrail",
    "guardduty",
    "sqs",
    "sns",
)
AWS_VERBS = (
    "Get",
    "List",
    "Describe",
    "Create",
    "Delete",
    "Put",
    "Update",
    "Attach",
    "Modify",
    "Start",
    "Stop",
    "Tag",
)
AWS_NOUNS = (
    "User",
    "Role",
    "Policy",
    "Bucket",
    "Object",
    "Instance",
    "Key",
    "Secret",
    "Function",
    "Parameter",
    "Snapshot",
    "LogGroup",
    "Trail",
    "Volume",
    "Cluster",
    "Image",
    "Queue",
    "Topic",
    "Detector",
    "Alias",
    "Group",
    "Stream",
    "Table",
    "Subnet",
    "Route",
    "Endpoint",
    "Certificate",
    "Layer",
    "Repository",
    "Nodegroup",
)
GCP_METHODS = tuple(
    f"google.{service}.v1.{noun}Service.{verb}{noun}"
    for service in ("iam", "storage", "compute", "secretmanager", "logging", "container")
    for verb in ("Get", "List", "Create", "Delete", "Update", "SetIamPolicy")
    for noun in ("Instance", "Bucket", "Secret", "Sink", "Cluster")
)
FALCO_RULES = tuple(
    f"{action} {target} in Container"
    for action in (
        "Launch",
        "Read",
        "Write",
        "Contact",
        "Modify",
        "Delete",
        "Execute",
        "Mount",
        "Change",
        "Open",
        "Create",
        "Load",
    )
    for target in (
        "Shell",
        "Sensitive File",
        "Metadata Service",
        "Binary",
        "Network Tool",
        "Package Manager",
        "Log File",
        "Cron Job",
        "Kernel Module",
        "Socket",
    )
)

LOGSOURCES = {
    Source.CLOUDTRAIL: "    product: aws\n    service: cloudtrail\n",
    Source.GCP_AUDIT: "    product: gcp\n    service: gcp.audit\n",
    Source.FALCO: "    product: falco\n",
}

FALLBACK_RULES = (
    (
        Source.CLOUDTRAIL,
        "selection:\n        eventName|startswith: ['List', 'Get']\n"
        "        errorCode: AccessDenied\n    condition: selection",
    ),
    (
        Source.CLOUDTRAIL,
        "selection:\n        userAgent|contains: 'TruffleHog'\n    condition: selection",
    ),
    (
        Source.FALCO,
        "selection:\n        proc.cmdline|contains: '/security-credentials/'\n"
        "    condition: selection",
    ),
    (
        Source.GCP_AUDIT,
        "selection:\n        protoPayload.methodName|endswith: '.insert'\n"
        "        protoPayload.request.machineType|re: '/machineTypes/(a2|a3|g2)-'\n"
        "    condition: selection",
    ),
)


def aws_event_names() -> list[tuple[str, str]]:
    """Return (eventSource, eventName) pairs; as in CloudTrail, each name has one service."""
    names = [f"{verb}{noun}" for verb in AWS_VERBS for noun in AWS_NOUNS]
    return [(f"{AWS_SERVICES[hash_index(name)]}.amazonaws.com", name) for name in names]


def hash_index(name: str) -> int:
    return sum(name.encode()) % len(AWS_SERVICES)


def build_rule_text(count: int, rng: random.Random) -> str:
    """Return a multi-document YAML with ``count`` rules, four of them unindexed."""
    documents = [
        _document(source, detection, rng) for source, detection in FALLBACK_RULES[: min(4, count)]
    ]
    makers: list[Callable[[random.Random], tuple[Source, str]]] = [
        *[_cloudtrail_detection] * 5,
        *[_gcp_detection] * 3,
        *[_falco_detection] * 2,
    ]
    while len(documents) < count:
        source, detection = rng.choice(makers)(rng)
        documents.append(_document(source, detection, rng))
    return "---\n".join(documents)


def _document(source: Source, detection: str, rng: random.Random) -> str:
    level = rng.choice(("low", "medium", "high"))
    return (
        f"title: synthetic {source.value} rule\nid: {uuid.UUID(int=rng.getrandbits(128))}\n"
        f"status: test\nlevel: {level}\ntags:\n    - attack.discovery\n    - attack.t1580\n"
        f"logsource:\n{LOGSOURCES[source]}detection:\n    {detection}\n"
    )


def _cloudtrail_detection(rng: random.Random) -> tuple[Source, str]:
    service, name = rng.choice(aws_event_names())
    extra = rng.choice(
        (
            "        userAgent|contains: 'aws-cli'\n",
            "        sourceIPAddress|cidr: '198.51.100.0/24'\n",
            "        userIdentity.type: ['AssumedRole', 'IAMUser']\n",
            "        userIdentity.arn|re: ':assumed-role/[a-z-]+/i-[0-9a-f]+$'\n",
            "        requestParameters.bucketName|startswith: 'acme-'\n",
        )
    )
    detection = (
        f"selection:\n        eventSource: '{service}'\n"
        f"        eventName: '{name}'\n{extra}"
        "    filter:\n        errorCode|exists: true\n"
        "    condition: selection and not filter"
    )
    return Source.CLOUDTRAIL, detection


def _gcp_detection(rng: random.Random) -> tuple[Source, str]:
    method = rng.choice(GCP_METHODS)
    extra = rng.choice(
        (
            "        protoPayload.authenticationInfo.principalEmail|endswith: "
            "'.iam.gserviceaccount.com'\n",
            "        protoPayload.requestMetadata.callerIp|cidr: '198.51.100.0/24'\n",
            "        protoPayload.status.code: null\n",
        )
    )
    return Source.GCP_AUDIT, (
        f"selection:\n        protoPayload.methodName: '{method}'\n{extra}    condition: selection"
    )


def _falco_detection(rng: random.Random) -> tuple[Source, str]:
    rule = rng.choice(FALCO_RULES)
    extra = rng.choice(
        (
            "        k8s.ns.name|startswith: 'shop'\n",
            "        output_fields.proc.cmdline|contains: 'curl'\n",
            "        priority: ['Warning', 'Error', 'Critical']\n",
        )
    )
    return Source.FALCO, f"selection:\n        rule: '{rule}'\n{extra}    condition: selection"


CLOUDTRAIL_TEMPLATE: dict[str, Any] = {
    "eventVersion": "1.09",
    "userIdentity": {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLENODEROLE01:i-0c1d2e3f4a5b6c7d8",
        "arn": "arn:aws:sts::111122223333:assumed-role/example-node-role/i-0c1d2e3f4a5b6c7d8",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLEKEY000001",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "userName": "example-node-role"},
            "attributes": {"creationDate": "2026-11-03T08:00:00Z", "mfaAuthenticated": "false"},
            "ec2RoleDelivery": "2.0",
        },
    },
    "eventTime": "2026-11-03T09:00:00Z",
    "awsRegion": "us-east-1",
    "userAgent": "aws-cli/2.22.35 md/awscrt#0.23.8 ua/2.0 os/linux",
    "requestParameters": {"bucketName": "acme-exports", "maxResults": 100},
    "responseElements": None,
    "readOnly": True,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "111122223333",
    "eventCategory": "Management",
}

GCP_TEMPLATE: dict[str, Any] = {
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "status": {},
        "authenticationInfo": {
            "principalEmail": "example-sa@example-project-271828.iam.gserviceaccount.com"
        },
        "requestMetadata": {"callerIp": "203.0.113.60", "callerSuppliedUserAgent": "gcloud"},
        "serviceName": "compute.googleapis.com",
        "resourceName": "projects/example-project-271828/zones/us-central1-a/instances/vm",
    },
    "insertId": "example0insert1",
    "resource": {"type": "gce_instance", "labels": {"project_id": "example-project-271828"}},
    "timestamp": "2026-11-12T15:00:00.000000Z",
    "severity": "INFO",
    "logName": "projects/example-project-271828/logs/cloudaudit.googleapis.com%2Factivity",
}

FALCO_TEMPLATE: dict[str, Any] = {
    "uuid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    "output": "09:00:00.000000000: Notice example alert",
    "priority": "Notice",
    "time": "2026-11-03T09:00:00.000000000Z",
    "output_fields": {
        "container.id": "4c5d6e7f8a9b",
        "k8s.ns.name": "shop",
        "k8s.pod.name": "frontend-7d9f8c6b54-x2lqp",
        "proc.cmdline": "curl -s http://169.254.169.254/latest/meta-data/",
        "proc.name": "curl",
        "user.uid": 1000,
    },
    "source": "syscall",
    "tags": ["T1552.005", "container", "mitre_credential_access", "network"],
    "hostname": "ip-10-0-34-112.ec2.internal",
}


def build_records(count: int, rng: random.Random) -> list[tuple[Source, dict[str, Any]]]:
    """Return varied records: CloudTrail half the time, GCP and Falco a quarter each."""
    names = aws_event_names()
    records: list[tuple[Source, dict[str, Any]]] = []
    for number in range(count):
        roll = rng.random()
        if roll < 0.5:
            record = copy.deepcopy(CLOUDTRAIL_TEMPLATE)
            record["eventSource"], record["eventName"] = rng.choice(names)
            record["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
            record["sourceIPAddress"] = rng.choice(("203.0.113.24", "198.51.100.23"))
            if rng.random() < 0.1:
                record["errorCode"] = "AccessDenied"
            records.append((Source.CLOUDTRAIL, record))
        elif roll < 0.75:
            record = copy.deepcopy(GCP_TEMPLATE)
            record["protoPayload"]["methodName"] = rng.choice(GCP_METHODS)
            record["insertId"] = f"i{number:012d}"
            records.append((Source.GCP_AUDIT, record))
        else:
            record = copy.deepcopy(FALCO_TEMPLATE)
            record["rule"] = rng.choice(FALCO_RULES)
            record["priority"] = rng.choice(("Notice", "Warning", "Error"))
            records.append((Source.FALCO, record))
    return records


class Rate(NamedTuple):
    """Matching speed by wall-clock time, and CPU time per record of this process."""

    records_per_second: float
    cpu_us_per_record: float


def measure(rules: RuleSet, records: list[tuple[Source, dict[str, Any]]], seconds: float) -> Rate:
    """Match the records repeatedly for about ``seconds`` and return the speed."""
    matched = 0
    processed = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    elapsed = 0.0
    while elapsed < seconds:
        for source, record in records:
            matched += len(rules.match_record(source, record))
        processed += len(records)
        elapsed = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return Rate(processed / elapsed, cpu_seconds / processed * 1e6)


def measure_unindexed(rules: RuleSet, records: list[tuple[Source, dict[str, Any]]]) -> float:
    """Return records per second when every rule of the record's source is evaluated."""
    by_source: dict[Source, list[Callable[[RecordView], bool]]] = {}
    for rule in rules.rules:
        by_source.setdefault(rule.source, []).append(rule.matcher)
    roots = FIELD_ROOTS
    started = time.perf_counter()
    for source, record in records:
        view = RecordView(record, roots.get(source, ()))
        for matcher in by_source.get(source, ()):
            matcher(view)
    return len(records) / (time.perf_counter() - started)


def count_candidates(rules: RuleSet, records: list[tuple[Source, dict[str, Any]]]) -> float:
    """Return the mean number of rules evaluated per record (index buckets plus fallback)."""
    total = 0
    for source, record in records:
        total += len(rules.candidates(source, record))
    return total / len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="Matching time per rule count, in seconds."
    )
    parser.add_argument(
        "--records", type=int, default=5000, help="Distinct records in the workload."
    )
    options = parser.parse_args()

    rng = random.Random(SEED)
    records = build_records(options.records, rng)
    rates: dict[int, Rate] = {}

    print(
        f"{'rules':>6} {'load s':>8} {'records/s':>11} {'us/record':>10} {'evaluated':>10} "
        f"{'unindexed us/record':>20} {'cpu us/record':>14}"
    )
    for count in RULE_COUNTS:
        text = build_rule_text(count, random.Random(SEED + count))
        started = time.perf_counter()
        rules = RuleSet.from_yaml(text)
        load_seconds = time.perf_counter() - started
        rates[count] = measure(rules, records, options.seconds)
        evaluated = count_candidates(rules, records)
        unindexed = measure_unindexed(rules, records[:1000])
        rate = rates[count]
        print(
            f"{len(rules):>6} {load_seconds:>8.2f} {rate.records_per_second:>11,.0f} "
            f"{1e6 / rate.records_per_second:>10.1f} {evaluated:>10.2f} "
            f"{1e6 / unindexed:>20.1f} {rate.cpu_us_per_record:>14.2f}"
        )

    bundled = RuleSet.load()
    bundled_rate = measure(bundled, records, options.seconds)
    print(f"bundled pack ({len(bundled)} rules): {bundled_rate.records_per_second:,.0f} records/s")
    first, last = rates[RULE_COUNTS[0]], rates[RULE_COUNTS[-1]]
    ratio = first.records_per_second / last.records_per_second
    print(
        f"per-record cost at {RULE_COUNTS[-1]} rules vs {RULE_COUNTS[0]}: {ratio:.2f}x "
        "(target: within 2x)"
    )
    # Process CPU time is less disturbed than wall-clock time by other load on the machine.
    cpu_ratio = last.cpu_us_per_record / first.cpu_us_per_record
    print(f"same ratio by CPU time of this process: {cpu_ratio:.2f}x")


if __name__ == "__main__":
    main()
