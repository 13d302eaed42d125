"""The Terraform module (deploy/terraform) is formatted, documents and validates its inputs,
and encodes the security properties the product needs: Redis 7 with TLS, at-rest
encryption, AUTH from Secrets Manager, automatic failover and Multi-AZ with >= 2 nodes; a
task role with exactly the permissions of `guard sync-aws` and the SQS visibility backoff;
security groups that only allow clients -> ALB -> tasks:8000 -> Redis:6379; the container's
configuration arriving as env/secrets that guard reads. `terraform validate` cannot run here
(no provider downloads), so structure is checked with python-hcl2."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TF = Path(__file__).resolve().parents[2] / "deploy/terraform"
Resources = dict[str, dict[str, dict[str, Any]]]


def as_list(x: Any) -> list[Any]:
    """A block is a dict in some python-hcl2 versions and a one-item list in others."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


TASK_ROLE_ACTIONS = {
    "tag:GetResources",
    "lambda:ListEventSourceMappings",
    "lambda:GetEventSourceMapping",
    "lambda:UpdateEventSourceMapping",
    "sqs:ChangeMessageVisibility",
}


def test_standard_module_layout() -> None:
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (TF / name).is_file(), name
    assert (TF / "examples/complete/main.tf").is_file()


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not installed")
def test_terraform_fmt() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff"],
        cwd=TF,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_aws_provider_is_pinned(hcl: Callable[[Path], dict[str, Any]]) -> None:
    tf = as_list(hcl(TF / "versions.tf")["terraform"])[0]
    assert tf["required_version"].startswith(">=")
    providers = as_list(tf["required_providers"])[0]
    aws = providers["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.search(r">=\s*5\.\d+", aws["version"]) and "<" in aws["version"]


@pytest.mark.parametrize("path", ["variables.tf", "examples/complete/main.tf"])
def test_every_variable_has_type_and_description(
    hcl: Callable[[Path], dict[str, Any]], path: str
) -> None:
    variables = [v for block in as_list(hcl(TF / path).get("variable")) for v in block.items()]
    assert variables
    for name, body in variables:
        body = as_list(body)[0]
        assert body.get("type"), f"{name} has no type"
        assert len(body.get("description", "")) > 10, f"{name} has no description"


def test_risky_variables_are_validated(hcl: Callable[[Path], dict[str, Any]]) -> None:
    variables = {
        k: as_list(v)[0]
        for b in as_list(hcl(TF / "variables.tf")["variable"])
        for k, v in b.items()
    }
    for name in (
        "name",
        "vpc_id",
        "private_subnet_ids",
        "container_image",
        "sqs_queue_arns",
        "redis_engine_version",
        "redis_num_cache_clusters",
        "environment",
    ):
        validations = as_list(variables[name].get("validation"))
        assert validations and all(v["condition"] and v["error_message"] for v in validations), name
    clusters = variables["redis_num_cache_clusters"]
    assert clusters["default"] >= 2
    assert ">= 2" in as_list(clusters["validation"])[0]["condition"]


def test_every_output_has_a_description(hcl: Callable[[Path], dict[str, Any]]) -> None:
    for block in as_list(hcl(TF / "outputs.tf")["output"]):
        for name, body in block.items():
            assert as_list(body)[0].get("description"), name


def test_replication_group_is_encrypted_and_highly_available(tf_resources: Resources) -> None:
    [rg] = tf_resources["aws_elasticache_replication_group"].values()
    assert rg["engine"] == "redis"
    assert rg["engine_version"] == "${var.redis_engine_version}"
    assert rg["transit_encryption_enabled"] is True
    assert rg["at_rest_encryption_enabled"] is True
    assert rg["automatic_failover_enabled"] is True
    assert rg["multi_az_enabled"] is True
    assert rg["num_cache_clusters"] == "${var.redis_num_cache_clusters}"
    assert rg["auth_token"] == "${random_password.redis_auth.result}"
    assert rg["security_group_ids"] == ["${aws_security_group.redis.id}"]
    # the token is kept in Secrets Manager
    versions = tf_resources["aws_secretsmanager_secret_version"]
    assert versions["redis_auth_token"]["secret_string"] == "${random_password.redis_auth.result}"
    # no eviction of live lease state
    [pg] = tf_resources["aws_elasticache_parameter_group"].values()
    params = {p["name"]: p["value"] for p in as_list(pg["parameter"])}
    assert pg["family"] == "redis7" and params["maxmemory-policy"] == "noeviction"


def test_redis_url_is_rediss_from_the_primary_endpoint_and_injected_as_secret(
    tf_resources: Resources,
) -> None:
    url = tf_resources["aws_secretsmanager_secret_version"]["redis_url"]["secret_string"]
    assert url.startswith("rediss://")
    assert "aws_elasticache_replication_group.this.primary_endpoint_address" in url
    td = tf_resources["aws_ecs_task_definition"]["this"]["container_definitions"]
    assert re.search(
        r'name\s*=\s*"GUARD_REDIS_URL",\s*valueFrom\s*=\s*aws_secretsmanager_secret\.redis_url\.arn',
        td,
    )
    secrets_block = td[td.index("secrets") : td.index("healthCheck")]
    assert "GUARD_ADMIN_TOKENS" in secrets_block and "GUARD_CLIENT_TOKENS" in secrets_block
    assert "local.metrics_token_secret" in secrets_block  # GUARD_METRICS_TOKEN when set


def test_metrics_token_is_optional_and_a_secret(repo: Any) -> None:
    """/metrics stays open unless metrics_token_secret_arn is set; then GUARD_METRICS_TOKEN
    comes from that secret (never a plain value) and the execution role may read it."""
    variables = (repo / "deploy/terraform/variables.tf").read_text()
    block = variables[variables.index('variable "metrics_token_secret_arn"') :]
    assert re.search(r"\A[^}]*default\s*=\s*null", block)
    main = (repo / "deploy/terraform/main.tf").read_text()
    arn = r"var\.metrics_token_secret_arn"
    assert re.search(r'name = "GUARD_METRICS_TOKEN", valueFrom = ' + arn, main)
    assert re.search(r"secret_arns = concat\(\[[^]]*\], " + arn + " == null", main)


def test_container_gets_only_variables_guard_reads(
    tf_resources: Resources, guard_serve_env: frozenset
) -> None:
    td = tf_resources["aws_ecs_task_definition"]["this"]
    names = set(re.findall(r"\b(GUARD_\w+|PROMETHEUS_\w+)\b", td["container_definitions"]))
    assert names <= guard_serve_env, names - guard_serve_env
    assert td["requires_compatibilities"] == ["FARGATE"]
    assert td["task_role_arn"] == "${aws_iam_role.task.arn}"
    assert td["execution_role_arn"] == "${aws_iam_role.execution.arn}"
    assert "containerPort = local.port" in td["container_definitions"]
    assert '"10001:10001"' in td["container_definitions"]


def policy_statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Static and dynamic `statement` blocks of an aws_iam_policy_document."""
    out = list(as_list(doc.get("statement")))
    for dyn in as_list(doc.get("dynamic")):
        for label, body in dyn.items():
            if label == "statement":
                out.extend(as_list(as_list(body)[0]["content"]))
    return out


def test_task_role_has_exactly_the_sync_and_backoff_permissions(
    tf_data: Resources, tf_resources: Resources
) -> None:
    statements = policy_statements(tf_data["aws_iam_policy_document"]["task"])
    actions = [a for st in statements for a in st["actions"]]
    assert sorted(actions) == sorted(TASK_ROLE_ACTIONS)
    assert all(st.get("effect", "Allow") == "Allow" for st in statements)
    by_action = {a: st for st in statements for a in st["actions"]}
    for action in ("lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"):
        resources = as_list(by_action[action]["resources"])
        assert resources and all(":event-source-mapping:" in r for r in resources), resources
    sqs = tf_data["aws_iam_policy_document"]["task"]["dynamic"]
    sqs_stmt = as_list(as_list(sqs)[0]["statement"])[0]
    assert "var.sqs_queue_arns" in sqs_stmt["for_each"]
    assert by_action["sqs:ChangeMessageVisibility"]["resources"] == "${statement.value}"
    # the role carries that one inline policy and nothing else
    policies = tf_resources["aws_iam_role_policy"]
    task_policies = [p for p in policies.values() if p["role"] == "${aws_iam_role.task.id}"]
    assert [p["policy"] for p in task_policies] == ["${data.aws_iam_policy_document.task.json}"]
    for rtype in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
        assert rtype not in tf_resources


def test_execution_role_reads_only_its_secrets_and_logs(tf_data: Resources) -> None:
    statements = policy_statements(tf_data["aws_iam_policy_document"]["execution"])
    by_action = {a: st for st in statements for a in st["actions"]}
    assert by_action["secretsmanager:GetSecretValue"]["resources"] == "${local.secret_arns}"
    assert as_list(by_action["logs:PutLogEvents"]["resources"]) == [
        "${aws_cloudwatch_log_group.this.arn}:*"
    ]
    assert "ecr:BatchGetImage" in by_action
    assert not any(a.endswith(":*") or a == "*" for a in by_action)


def test_security_group_rules_are_scoped(tf_resources: Resources, tf_main: dict[str, Any]) -> None:
    locals_ = {k: v for block in as_list(tf_main["locals"]) for k, v in block.items()}
    assert locals_["port"] == 8000 and locals_["redis_port"] == 6379
    ingress = tf_resources["aws_vpc_security_group_ingress_rule"]
    egress = tf_resources["aws_vpc_security_group_egress_rule"]
    for name, rule in {**ingress, **egress}.items():
        assert rule["ip_protocol"] == "tcp", name
        assert rule["from_port"] == rule["to_port"], f"{name} opens a port range"
        assert ("cidr_ipv4" in rule) != ("referenced_security_group_id" in rule), name
        assert "cidr_ipv6" not in rule, name
    # nothing inbound from the whole internet by default; CIDRs only from variables
    for name, rule in ingress.items():
        assert rule.get("cidr_ipv4", "${each.value.cidr}") == "${each.value.cidr}", name

    def rules_on(sg: str, rules: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {
            n: r
            for n, r in rules.items()
            if r["security_group_id"] == f"${{aws_security_group.{sg}.id}}"
        }

    tasks_in = rules_on("tasks", ingress)
    assert [(r["from_port"], r["referenced_security_group_id"]) for r in tasks_in.values()] == [
        ("${local.port}", "${aws_security_group.alb.id}")
    ]
    redis_in = rules_on("redis", ingress)
    assert [(r["from_port"], r["referenced_security_group_id"]) for r in redis_in.values()] == [
        ("${local.redis_port}", "${aws_security_group.tasks.id}")
    ]
    assert rules_on("redis", egress) == {}, "Redis needs no egress"
    for sg in tf_resources["aws_security_group"].values():
        assert "ingress" not in sg and "egress" not in sg, "inline rules bypass these checks"
    tasks_out = rules_on("tasks", egress)
    to_redis = [r for r in tasks_out.values() if "referenced_security_group_id" in r]
    assert [(r["from_port"], r["referenced_security_group_id"]) for r in to_redis] == [
        ("${local.redis_port}", "${aws_security_group.redis.id}")
    ]
    assert all(r["from_port"] == 443 for r in tasks_out.values() if "cidr_ipv4" in r)
    alb_out = rules_on("alb", egress)
    assert [(r["from_port"], r["referenced_security_group_id"]) for r in alb_out.values()] == [
        ("${local.port}", "${aws_security_group.tasks.id}")
    ]


def test_alb_target_group_checks_healthz(tf_resources: Resources) -> None:
    tg = tf_resources["aws_lb_target_group"]["this"]
    assert tg["port"] == "${local.port}" and tg["target_type"] == "ip"
    hc = as_list(tg["health_check"])[0]
    assert hc["path"] == "/healthz" and hc["matcher"] == "200"
    assert {"http", "https"} <= set(tf_resources["aws_lb_listener"])
    assert tf_resources["aws_lb"]["this"]["drop_invalid_header_fields"] is True


def test_service_scales_on_cpu_and_logs_to_cloudwatch(tf_resources: Resources) -> None:
    svc = tf_resources["aws_ecs_service"]["this"]
    assert svc["launch_type"] == "FARGATE"
    net = as_list(svc["network_configuration"])[0]
    assert net["security_groups"] == ["${aws_security_group.tasks.id}"]
    assert as_list(svc["load_balancer"])[0]["container_port"] == "${local.port}"
    [policy] = tf_resources["aws_appautoscaling_policy"].values()
    assert policy["policy_type"] == "TargetTrackingScaling"
    cfg = as_list(policy["target_tracking_scaling_policy_configuration"])[0]
    spec = as_list(cfg["predefined_metric_specification"])[0]
    assert spec["predefined_metric_type"] == "ECSServiceAverageCPUUtilization"
    [target] = tf_resources["aws_appautoscaling_target"].values()
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    assert "aws_cloudwatch_log_group" in tf_resources
