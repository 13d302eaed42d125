"""sync-aws on moto: selectors into members (tags, stacks, >100 functions), ESM max push."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

import guard
from guard.aws.cli import sync_aws
from guard.aws.sync import STACK_TAG, function_name_from_arn, run_sync

REGION = "us-east-1"


def test_function_name_from_arn() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:ingest"
    assert function_name_from_arn(arn) == "ingest"
    assert function_name_from_arn(arn + ":prod") == "ingest"
    assert function_name_from_arn("arn:aws:sqs:us-east-1:1:q") is None


def test_tags_and_stack_into_members(g: guard.Guard, lambdas: Any) -> None:
    lambdas.create("ingest", {"team": "data", "tier": "batch"})
    lambdas.create("transform", {"team": "data", "tier": "batch"})
    lambdas.create("report", {"team": "data", "tier": "web"})
    lambdas.create("login", {STACK_TAG: "checkout-stack"})
    lambdas.create("pay", {STACK_TAG: "checkout-stack", "team": "data"})
    lambdas.create("other", {STACK_TAG: "other-stack"})
    admin = g.admin
    admin.put_group(
        "batch", max_concurrency=10, selector={"tags": {"team": "data", "tier": "batch"}}
    )
    admin.put_group(
        "checkout", max_concurrency=5, members=["gone"], selector={"stack": "checkout-stack"}
    )
    admin.put_group("manual", max_concurrency=3, members=["x"])  # no selector: untouched

    dry = run_sync(admin, dry_run=True)
    assert {c.group: c.after for c in dry.groups} == {
        "batch": ["ingest", "transform"],
        "checkout": ["login", "pay"],
    }
    assert admin.get_group("batch")["members"] == []  # dry run wrote nothing
    checkout = next(c for c in dry.groups if c.group == "checkout")
    assert checkout.added == ["login", "pay"] and checkout.removed == ["gone"]
    assert "would change members" in "\n".join(dry.lines())

    report = run_sync(admin)
    assert not report.errors and all(c.applied for c in report.groups)
    assert admin.get_group("batch")["members"] == ["ingest", "transform"]
    assert admin.get_group("checkout")["members"] == ["login", "pay"]
    assert admin.get_group("manual")["members"] == ["x"]
    assert not run_sync(admin).changed  # idempotent


def test_pagination_over_more_than_100_functions(g: guard.Guard, lambdas: Any) -> None:
    for i in range(130):
        lambdas.create(f"fn-{i:03d}", {"fleet": "big"})
    lambdas.create("outsider", {"fleet": "small"})
    pages = boto3.client("resourcegroupstaggingapi", region_name=REGION).get_resources(
        TagFilters=[{"Key": "fleet", "Values": ["big"]}], ResourceTypeFilters=["lambda:function"]
    )
    assert pages.get("PaginationToken")  # moto really pages this result
    g.admin.put_group("fleet", selector={"tags": {"fleet": "big"}})
    run_sync(g.admin)
    assert g.admin.get_group("fleet")["members"] == [f"fn-{i:03d}" for i in range(130)]


def test_cli_dry_run_then_apply(g: guard.Guard, lambdas: Any, redis_server: Any) -> None:
    lambdas.create("ingest", {"team": "data"})
    g.admin.put_group("data", selector={"tags": {"team": "data"}})
    runner = CliRunner()
    args = ["--redis-url", redis_server.url, "--namespace", g.namespace]
    out = runner.invoke(sync_aws, [*args, "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "group data: would change members" in out.output and "+ ingest" in out.output
    assert "nothing was changed" in out.output
    assert g.admin.get_group("data")["members"] == []
    out = runner.invoke(sync_aws, [*args, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["groups"][0]["members"] == ["ingest"]
    assert g.admin.get_group("data")["members"] == ["ingest"]
    entry = g.admin.audit(limit=1)[0]  # the write is in the audit log, named as sync-aws
    assert entry["actor"].startswith("sync-aws (") and entry["action"] == "patch_group"
    assert entry["after"]["group:data"]["members"] == ["ingest"]


def test_cli_reads_env_and_reports_errors(
    g: guard.Guard, lambdas: Any, redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas.create("a", {"team": "x"})
    g.admin.put_group("r1", reserved=1, members=[], selector={"tags": {"team": "x"}})
    g.admin.put_group("r2", reserved=1, members=["a"])  # a in two reserving groups: conflict
    monkeypatch.setenv("GUARD_REDIS_URL", redis_server.url)
    monkeypatch.setenv("GUARD_NAMESPACE", g.namespace)
    out = CliRunner().invoke(sync_aws, [])
    assert out.exit_code == 1
    assert "group r1: ERROR ConflictError" in out.output
    monkeypatch.delenv("GUARD_REDIS_URL")
    out = CliRunner().invoke(sync_aws, [])
    assert out.exit_code == 2 and "GUARD_REDIS_URL" in out.output


def sqs_mapping(function: str, queue: str, max_: int | None = None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    kw: dict[str, Any] = {"ScalingConfig": {"MaximumConcurrency": max_}} if max_ else {}
    lam = boto3.client("lambda", region_name=REGION)
    return str(
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=function, **kw)["UUID"]
    )


def scaling(uuid: str) -> dict[str, Any]:
    lam = boto3.client("lambda", region_name=REGION)
    return dict(lam.get_event_source_mapping(UUID=uuid).get("ScalingConfig") or {})


def test_push_sqs_max(g: guard.Guard, lambdas: Any) -> None:
    for name in ("set", "same", "low", "high", "unlimited", "fresh", "unconfigured"):
        lambdas.create(name)
    m = {
        "set": sqs_mapping("set", "q-set", 50),
        "same": sqs_mapping("same", "q-same", 20),
        "low": sqs_mapping("low", "q-low", 7),
        "high": sqs_mapping("high", "q-high", 7),
        "unlimited": sqs_mapping("unlimited", "q-unlimited", 9),
        "fresh": sqs_mapping("fresh", "q-fresh"),
        "unconfigured": sqs_mapping("unconfigured", "q-unconfigured", 3),
    }
    m["set2"] = sqs_mapping("set", "q-set-2")  # two queues feed one function
    admin = g.admin
    admin.put_function("set", max_concurrency=10)
    admin.put_function("same", max_concurrency=20)
    admin.put_function("low", max_concurrency=1)
    admin.put_function("high", max_concurrency=1001)
    admin.put_function("unlimited", max_concurrency=None)
    admin.put_function("fresh", max_concurrency=2)
    admin.put_function("not-deployed", max_concurrency=5)  # no such Lambda: ignored

    dry = run_sync(admin, push_sqs_max=True, dry_run=True)
    assert not dry.errors
    actions = {(c.function, c.uuid): c.action for c in dry.mappings}
    assert actions == {
        ("set", m["set"]): "set",
        ("set", m["set2"]): "set",
        ("same", m["same"]): "unchanged",
        ("low", m["low"]): "skip",
        ("high", m["high"]): "skip",
        ("unlimited", m["unlimited"]): "remove",
        ("fresh", m["fresh"]): "set",
    }
    assert scaling(m["set"]) == {"MaximumConcurrency": 50}  # dry run: untouched
    text = "\n".join(dry.lines())
    assert "outside the 2..1000" in text and "guard still enforces 1001" in text
    assert "would set MaximumConcurrency 50 -> 10" in text

    report = run_sync(admin, push_sqs_max=True)
    assert not report.errors
    assert scaling(m["set"]) == {"MaximumConcurrency": 10}
    assert scaling(m["set2"]) == {"MaximumConcurrency": 10}
    assert scaling(m["same"]) == {"MaximumConcurrency": 20}
    assert scaling(m["low"]) == {"MaximumConcurrency": 7}  # skipped: 1 is below SQS's 2
    assert scaling(m["high"]) == {"MaximumConcurrency": 7}  # skipped: 1001 is above 1000
    assert scaling(m["unlimited"]) == {}  # null max: the poller's cap is removed
    assert scaling(m["fresh"]) == {"MaximumConcurrency": 2}
    assert scaling(m["unconfigured"]) == {"MaximumConcurrency": 3}  # not guard's: untouched
    assert not run_sync(admin, push_sqs_max=True).changed


def test_push_ignores_non_sqs_sources(g: guard.Guard, lambdas: Any) -> None:
    lambdas.create("streamer")
    ddb = boto3.client("dynamodb", region_name=REGION)
    table = ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )
    stream = table["TableDescription"]["LatestStreamArn"]
    boto3.client("lambda", region_name=REGION).create_event_source_mapping(
        EventSourceArn=stream, FunctionName="streamer", StartingPosition="LATEST"
    )
    g.admin.put_function("streamer", max_concurrency=10)
    assert run_sync(g.admin, push_sqs_max=True).mappings == []


def test_clients_mapping_and_endpoint_env(
    g: guard.Guard, lambdas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas.create("ingest", {"team": "data"})
    g.admin.put_group("data", selector={"tags": {"team": "data"}})
    tagging = boto3.client("resourcegroupstaggingapi", region_name=REGION)
    run_sync(g.admin, {"resourcegroupstaggingapi": tagging}, dry_run=True)
    with pytest.raises(guard.UsageError):
        run_sync(g.admin, {"lambda": tagging})
    # AWS_ENDPOINT_URL reaches the clients guard makes itself
    from guard.aws import _clients

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    c = _clients.client("lambda")
    assert c.meta.endpoint_url == "http://localhost:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://localhost:9324")
    assert _clients.client("sqs").meta.endpoint_url == "http://localhost:9324"


def test_guard_sync_aws_subcommand_uses_the_cli_target(
    g: guard.Guard, lambdas: Any, redis_server: Any
) -> None:
    """`guard -n NS sync-aws` reaches the store the way every guard command does."""
    from guard.cli import main

    lambdas.create("ingest", {"team": "data"})
    g.admin.put_group("data", selector={"tags": {"team": "data"}})
    runner = CliRunner()
    base = ["--redis-url", redis_server.url, "-n", g.namespace, "sync-aws"]
    out = runner.invoke(main, [*base, "--dry-run"], env={"GUARD_URL": ""})
    assert out.exit_code == 0, out.output
    assert "+ ingest" in out.output and g.admin.get_group("data")["members"] == []
    out = runner.invoke(main, base, env={"GUARD_URL": ""})
    assert out.exit_code == 0, out.output
    assert g.admin.get_group("data")["members"] == ["ingest"]


def test_serve_periodic_sync_updates_members(
    g: guard.Guard, lambdas: Any, redis_server: Any
) -> None:
    """What `guard serve --sync-aws-every` runs: a daemon loop over every namespace."""
    import time

    from guard.server.serve import start_aws_sync

    g.admin.put_group("data", selector={"tags": {"team": "data"}})
    stop = start_aws_sync(redis_server.url, 0.2)
    try:
        lambdas.create("late", {"team": "data"})  # appears after the loop started
        deadline = time.monotonic() + 10
        while g.admin.get_group("data")["members"] != ["late"]:
            assert time.monotonic() < deadline, "periodic sync never picked the function up"
            time.sleep(0.1)
    finally:
        stop.set()
