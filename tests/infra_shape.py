#!/usr/bin/env python3
"""Prints, as JSON, what template.yaml and the cargo-lambda watch router in
Cargo.toml say about the infrastructure, in the shape tests/it/infra_agrees.rs
compares with what `hookflow provision` creates on moto."""
import json
import re
import os
import sys
import tomllib

sys.path.insert(0, os.path.dirname(__file__))
from template_test import T  # noqa: E402  (the template, with its !Ref tags read)

ROOT = os.path.join(os.path.dirname(__file__), "..")
TABLES = {
    "WebhooksTable": "webhooks",
    "PipelinesTable": "pipelines",
    "EventsTable": "events",
    "OutgoingTable": "outgoing",
    "InvocationsTable": "invocations",
}


def keys(schema):
    return [[k["AttributeName"], k["KeyType"]] for k in schema]


def table(props):
    ttl = props.get("TimeToLiveSpecification", {})
    return {
        "key": keys(props["KeySchema"]),
        "attributes": {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]},
        "indexes": {
            i["IndexName"]: {"key": keys(i["KeySchema"]), "projection": i["Projection"]["ProjectionType"]}
            for i in props.get("GlobalSecondaryIndexes", [])
        },
        "ttl": ttl.get("AttributeName") if ttl.get("Enabled") else None,
    }


def number(value):
    if isinstance(value, dict) and "Fn::FindInMap" in value:
        name, key, field = value["Fn::FindInMap"]
        value = T["Mappings"][name][key][field]
    return int(value)


resources = T["Resources"]
queue = resources["PipelineJobsQueue"]["Properties"]
dlq = resources["PipelineJobsDeadLetterQueue"]["Properties"]
routes = {}
for resource in resources.values():
    if resource["Type"] != "AWS::Serverless::Function":
        continue
    binary = resource["Metadata"]["BuildProperties"]["Binary"]
    for event in (resource["Properties"].get("Events") or {}).values():
        if event["Type"] == "HttpApi":
            routes[event["Properties"]["Path"]] = binary
with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
    watch = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
# The watch router writes API Gateway's greedy `{name+}` as `{*name}`.
watch = {re.sub(r"\{\*(\w+)\}", r"{\1+}", path): binary for path, binary in watch.items()}

json.dump(
    {
        "tables": {TABLES[name]: table(resources[name]["Properties"]) for name in TABLES},
        "table_resources": sorted(k for k, v in resources.items() if v["Type"] == "AWS::DynamoDB::Table"),
        "queue": {
            "visibility": number(queue["VisibilityTimeout"]),
            "retention": number(queue["MessageRetentionPeriod"]),
            "maxReceiveCount": number(queue["RedrivePolicy"]["maxReceiveCount"]),
            "deadLetterRetention": number(dlq["MessageRetentionPeriod"]),
        },
        "routes": routes,
        "watch_routes": watch,
    },
    sys.stdout,
    indent=1,
    sort_keys=True,
)
