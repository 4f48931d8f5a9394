"""Field look-up: dotted paths, keys containing dots, arrays and Falco's output_fields."""

from __future__ import annotations

from pivotwatch.correlator.sigma.fields import FieldPath, to_text

FALCO_RECORD = {
    "rule": "Contact EC2 Instance Metadata Service From Container",
    "hostname": "ip-10-0-34-112.ec2.internal",
    "output_fields": {
        "k8s.ns.name": "shop",
        "proc.aname[2]": "node",
        "fd.rport": 80,
    },
}


def test_fieldpath_nested_path() -> None:
    record = {"userIdentity": {"sessionContext": {"sessionIssuer": {"userName": "node-role"}}}}
    path = FieldPath("userIdentity.sessionContext.sessionIssuer.userName")
    assert path.resolve(record) == ["node-role"]


def test_fieldpath_absent_is_empty_and_null_is_none() -> None:
    assert FieldPath("errorCode").resolve({"eventName": "GetObject"}) == []
    assert FieldPath("errorCode").resolve({"errorCode": None}) == [None]


def test_fieldpath_key_with_dots_under_output_fields() -> None:
    assert FieldPath("output_fields.k8s.ns.name").resolve(FALCO_RECORD) == ["shop"]
    assert FieldPath("output_fields.proc.aname[2]").resolve(FALCO_RECORD) == ["node"]


def test_fieldpath_bare_falco_field_uses_root() -> None:
    path = FieldPath("k8s.ns.name")
    assert path.resolve(FALCO_RECORD) == []
    assert path.resolve(FALCO_RECORD, ("output_fields",)) == ["shop"]


def test_fieldpath_top_level_wins_over_root() -> None:
    path = FieldPath("rule")
    record = {**FALCO_RECORD, "output_fields": {"rule": "other"}}
    assert path.resolve(record, ("output_fields",)) == [FALCO_RECORD["rule"]]


def test_fieldpath_exact_key_before_nested() -> None:
    record = {"a.b": "exact", "a": {"b": "nested"}}
    assert FieldPath("a.b").resolve(record) == ["exact"]


def test_fieldpath_walks_arrays() -> None:
    record = {
        "requestParameters": {
            "ipPermissions": {
                "items": [
                    {"ipRanges": {"items": [{"cidrIp": "10.0.0.0/16"}]}},
                    {"ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "1.2.3.4/32"}]}},
                ]
            }
        }
    }
    path = FieldPath("requestParameters.ipPermissions.items.ipRanges.items.cidrIp")
    assert path.resolve(record) == ["10.0.0.0/16", "0.0.0.0/0", "1.2.3.4/32"]


def test_fieldpath_flattens_final_array() -> None:
    assert FieldPath("tags").resolve({"tags": ["T1059", ["nested"]]}) == ["T1059", "nested"]


def test_to_text_spellings() -> None:
    assert to_text(False) == "false"
    assert to_text(443) == "443"
    assert to_text(None) is None
    assert to_text({"a": [1, "b"]}) == '{"a":[1,"b"]}'
