#!/usr/bin/env python3
"""What template.yaml promises a user of `sam deploy`, beyond what cfn-lint
checks: guided prompts that take Enter, secrets in Secrets Manager, a mail URL
with a host, limits on the public routes and the worker, an alarm on the
dead-letter queue, and logs that expire. PyYAML comes with cfn-lint.
"""
import os
import re
import sys
import unittest

import yaml

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "template.yaml")


class Loader(yaml.SafeLoader):
    pass


def intrinsic(loader, suffix, node):
    """`!Ref X` becomes {"Ref": "X"}, `!If [...]` {"Fn::If": [...]}, and so on."""
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


Loader.add_multi_constructor("!", intrinsic)

with open(TEMPLATE, encoding="utf-8") as f:
    T = yaml.load(f, Loader=Loader)
PARAMS = T["Parameters"]
RESOURCES = T["Resources"]
FUNCTIONS = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::Serverless::Function"}


def env(function):
    return FUNCTIONS[function]["Properties"].get("Environment", {}).get("Variables", {})


def statements(function):
    return [s for p in FUNCTIONS[function]["Properties"]["Policies"] for s in p["Statement"]]


def actions(function):
    found = set()
    for s in statements(function):
        if "Fn::If" in s:
            s = s["Fn::If"][1]
        a = s["Action"]
        found.update([a] if isinstance(a, str) else a)
    return found


class GuidedDeploy(unittest.TestCase):
    def test_every_prompt_takes_enter(self):
        # SAM prompts a NoEcho parameter without its default, again and again
        # until something is typed.
        for name, p in PARAMS.items():
            self.assertIn("Default", p, name)
            self.assertFalse(p.get("NoEcho", False), f"{name} is NoEcho")

    def test_the_smtp_url_may_be_empty_but_needs_a_host(self):
        pattern = re.compile(PARAMS["SmtpUrl"]["AllowedPattern"])
        for url in ["", "smtps://smtp.example.com:465", "smtp://smtp.example.com:587?tls=required", "smtp://[::1]:2525"]:
            self.assertTrue(pattern.fullmatch(url), url)
        for url in ["smtp://", "smtps://", "smtp://:587", "smtps://user:pw@smtp.example.com:465", "http://x"]:
            self.assertFalse(pattern.fullmatch(url), url)


class Secrets(unittest.TestCase):
    def test_the_admin_token_is_a_secret_only_webhook_admin_reads(self):
        self.assertNotIn("AdminToken", PARAMS)
        secret = RESOURCES["AdminTokenSecret"]
        self.assertEqual(secret["Type"], "AWS::SecretsManager::Secret")
        self.assertIn("GenerateSecretString", secret["Properties"])
        for name in FUNCTIONS:
            self.assertNotIn("HOOKFLOW_ADMIN_TOKEN", env(name), name)
            reads = "secretsmanager:GetSecretValue" in actions(name)
            names = "HOOKFLOW_ADMIN_TOKEN_SECRET" in env(name)
            self.assertEqual(names, name == "WebhookAdminFunction", name)
            self.assertEqual(reads, name in ("WebhookAdminFunction", "PipelineWorkerFunction"), name)
        shared = T["Globals"]["Function"]["Environment"]["Variables"]
        self.assertFalse([k for k in shared if k.startswith("HOOKFLOW_ADMIN_TOKEN")], "not in Globals")

    def test_the_functions_that_send_mail_get_the_smtp_login(self):
        # The worker's mail.send, and pipeline.test sideEffects=true in webhook-admin.
        for name in ("PipelineWorkerFunction", "WebhookAdminFunction"):
            self.assertEqual(env(name).get("HOOKFLOW_SMTP_URL"), {"Ref": "SmtpUrl"}, name)
            self.assertEqual(env(name).get("HOOKFLOW_SMTP_LOGIN_SECRET"), {"Ref": "SmtpLoginSecretArn"}, name)
            granted = [s["Fn::If"][1] for s in statements(name) if "Fn::If" in s and s["Fn::If"][0] == "HasSmtpLogin"]
            self.assertEqual([g["Resource"] for g in granted], [{"Ref": "SmtpLoginSecretArn"}], name)
        for name in ("WebhookReceiveFunction", "ResultPollFunction"):
            self.assertNotIn("HOOKFLOW_SMTP_URL", env(name), name)


class Limits(unittest.TestCase):
    def test_admin_stops_before_the_http_api_does(self):
        self.assertEqual(FUNCTIONS["WebhookAdminFunction"]["Properties"]["Timeout"], 29)

    def test_the_public_routes_are_throttled_by_parameters(self):
        routes = RESOURCES["HttpApi"]["Properties"]["RouteSettings"]
        receive = FUNCTIONS["WebhookReceiveFunction"]["Properties"]["Events"]
        for event in receive.values():
            key = f'{event["Properties"]["Method"]} {event["Properties"]["Path"]}'
            self.assertEqual(
                routes[key],
                {
                    "ThrottlingRateLimit": {"Ref": "ReceiveThrottleRateLimit"},
                    "ThrottlingBurstLimit": {"Ref": "ReceiveThrottleBurstLimit"},
                },
                key,
            )

    def test_the_worker_has_a_maximum_concurrency(self):
        mapping = RESOURCES["PipelineWorkerJobs"]["Properties"]
        self.assertEqual(mapping["ScalingConfig"]["MaximumConcurrency"], {"Ref": "WorkerMaxConcurrency"})

    def test_the_functions_know_the_queue_retention(self):
        retention = {"Fn::FindInMap": ["JobQueue", "Retention", "Seconds"]}
        self.assertEqual(RESOURCES["PipelineJobsQueue"]["Properties"]["MessageRetentionPeriod"], retention)
        self.assertEqual(T["Globals"]["Function"]["Environment"]["Variables"]["HOOKFLOW_QUEUE_RETENTION_SECONDS"], retention)


class Operations(unittest.TestCase):
    def test_an_alarm_watches_the_dead_letter_queue(self):
        alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
        watched = [
            d["Value"]
            for a in alarms
            if a["Namespace"] == "AWS/SQS" and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
            for d in a["Dimensions"]
        ]
        self.assertIn({"Fn::GetAtt": "PipelineJobsDeadLetterQueue.QueueName"}, watched)

    def test_every_function_logs_to_a_group_that_expires(self):
        for name, function in FUNCTIONS.items():
            group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            self.assertEqual(RESOURCES[group]["Type"], "AWS::Logs::LogGroup", name)
            self.assertEqual(RESOURCES[group]["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"}, name)

    def test_outcomes_in_the_bucket_expire_and_only_their_users_reach_them(self):
        rules = RESOURCES["PayloadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        self.assertIn("outcomes/", [r.get("Prefix") for r in rules])
        for name, wanted in [
            ("PipelineWorkerFunction", {"s3:GetObject", "s3:PutObject"}),
            ("WebhookReceiveFunction", {"s3:GetObject"}),
            ("ResultPollFunction", {"s3:GetObject"}),
            # event.get and event.replay's wait read outcomes; nothing else does.
            ("WebhookAdminFunction", {"s3:GetObject"}),
        ]:
            granted = set()
            for s in statements(name):
                resources = s.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                if any("outcomes/" in str(r) for r in resources):
                    granted.add(s["Action"]) if isinstance(s["Action"], str) else granted.update(s["Action"])
            self.assertEqual(granted, wanted, name)

    def test_the_worker_may_claim_a_mail_and_give_the_claim_back(self):
        # mail.send claims its mail with a conditional put on the events table
        # and deletes the claim when the server refused the mail; moto does not
        # check IAM, so only this test sees a missing action.
        granted = set()
        for s in statements("PipelineWorkerFunction"):
            if s.get("Resource") == {"Fn::GetAtt": "EventsTable.Arn"}:
                granted.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        self.assertLessEqual({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}, granted)

    def test_receive_may_claim_a_delivery_and_drop_a_duplicate_payload(self):
        # dedup: the event and its claim in one transaction, the held claim read,
        # the claim given back, and a duplicate's claim-checked payload deleted.
        events, payloads = set(), set()
        for s in statements("WebhookReceiveFunction"):
            actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
            if s.get("Resource") == {"Fn::GetAtt": "EventsTable.Arn"}:
                events.update(actions)
            if "events/" in str(s.get("Resource")):
                payloads.update(actions)
        self.assertLessEqual({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"}, events)
        self.assertLessEqual({"s3:PutObject", "s3:DeleteObject"}, payloads)

    def test_admin_may_scan_redrive_and_drop_dead_letters(self):
        # deadletter.*: the dead-letter queue received, made visible again,
        # deleted from; its jobs sent back to the job queue. Moto does not
        # check IAM, so only this test sees a missing action.
        self.assertEqual(
            env("WebhookAdminFunction").get("HOOKFLOW_DEAD_LETTER_QUEUE_URL"),
            {"Ref": "PipelineJobsDeadLetterQueue"},
        )
        granted = {"dlq": set(), "queue": set()}
        for s in statements("WebhookAdminFunction"):
            if "Fn::If" in s:
                continue  # conditional grants (the SMTP login) are not about queues
            actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
            if s.get("Resource") == {"Fn::GetAtt": "PipelineJobsDeadLetterQueue.Arn"}:
                granted["dlq"].update(actions)
            if s.get("Resource") == {"Fn::GetAtt": "PipelineJobsQueue.Arn"}:
                granted["queue"].update(actions)
        self.assertLessEqual(
            {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"},
            granted["dlq"],
        )
        self.assertIn("sqs:SendMessage", granted["queue"])
        # queue.get (the console's header) counts both queues.
        self.assertIn("sqs:GetQueueAttributes", granted["queue"])
        self.assertIn("sqs:GetQueueAttributes", granted["dlq"])

    def test_admin_serves_the_console(self):
        # /console and its files, GET only, public like the OpenAPI document
        # (the page signs in with the admin token for every call it makes).
        routes = {}
        for event in FUNCTIONS["WebhookAdminFunction"]["Properties"]["Events"].values():
            props = event["Properties"]
            routes[props["Path"]] = props["Method"]
        self.assertEqual(routes.get("/console"), "GET")
        self.assertEqual(routes.get("/console/{file+}"), "GET")

    def test_sam_build_output_is_ignored(self):
        with open(os.path.join(os.path.dirname(TEMPLATE), ".gitignore"), encoding="utf-8") as f:
            self.assertIn(".aws-sam/", f.read().split())


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=1).result
    failed = len(result.failures) + len(result.errors)
    print(f"template: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
