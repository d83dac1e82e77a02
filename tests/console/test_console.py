"""The web console in a real browser: headless Chromium (Debian's) driven by
Selenium against a running `hookflow serve`, walking an operator's journeys and
asserting what is on the screen.

Run by tests/console.sh (which `make test` calls, on the embedded backend and on
the AWS backend against moto). Needs HOOKFLOW_BIN; HOOKFLOW_TEST_BACKEND=aws
with AWS_ENDPOINT_URL runs the server on the AWS adapters. With
HOOKFLOW_SCREENSHOTS=<dir> the main pages are saved there as PNGs (`make
screenshots` writes docs/).
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

# A hookflow already running (the Lambda functions under `cargo lambda watch`,
# tests/lambda_smoke.sh): only the journeys that need no server of the test's
# own run against it (FUNCTION_JOURNEYS), with its admin token.
EXTERNAL = os.environ.get("HOOKFLOW_CONSOLE_URL")
ADMIN = os.environ.get("HOOKFLOW_CONSOLE_ADMIN_TOKEN", "console-test-admin-token-0123456789")
BIN = os.environ.get("HOOKFLOW_BIN", "target/debug/hookflow")
BACKEND = os.environ.get("HOOKFLOW_TEST_BACKEND", "embedded")
SHOTS = os.environ.get("HOOKFLOW_SCREENSHOTS")
WAIT = 20  # seconds any one thing on the screen may take

# The webhook the journeys create; against a running hookflow, whose store may
# hold one from an earlier run, a key of this run's own.
LEAD_KEY = f"webhook.console.{uuid.uuid4().hex[:8]}" if EXTERNAL else "webhook.lead.created"
# A pipeline that fails at its third step: webhook.send needs a user allowed to send.
FAILING = f"""pipeline:
  - event.listen:
      eventKey: {LEAD_KEY}
  - body.set:
      value: ${{@convert.fromBase64(body.payload.origin)}}
  - webhook.send:
      webhookId: crm-leads
      data: ${{body}}
      async: true
"""
FIXED = FAILING.replace("  - webhook.send:", "  - iam.run.as: systemuser\n  - webhook.send:")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoint:
    """A partner's endpoint on loopback: /leads answers 503 to its first call and
    200 after; /silent accepts and never answers (a run calling it stays in its step)."""

    def __init__(self):
        self.calls = {"/leads": 0, "/silent": 0}
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                endpoint.calls[self.path] = endpoint.calls.get(self.path, 0) + 1
                if self.path == "/silent":
                    time.sleep(120)
                    return
                status = 503 if endpoint.calls[self.path] == 1 else 200
                body = json.dumps({"accepted": status == 200}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


class Serve:
    """`hookflow serve` on a fixed port and data dir, so it can be killed and started again."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hookflow-console-")
        self.port = free_port()
        self.base = EXTERNAL or f"http://127.0.0.1:{self.port}"
        self.prefix = f"console{uuid.uuid4().hex[:8]}"
        self.process = None

    def start(self):
        if EXTERNAL:
            return
        args = [BIN, "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", os.path.join(self.dir, "data")]
        if BACKEND == "aws":
            args += ["--backend", "aws", "--provision", "--aws-prefix", self.prefix]
        env = dict(os.environ,
                   HOOKFLOW_ADMIN_TOKEN=ADMIN,
                   HOOKFLOW_LOG="warn",
                   HOOKFLOW_OUTGOING_ALLOW="127.0.0.0/8",
                   HOOKFLOW_OUTGOING_RETRY_SCHEDULE="1s,1s,1s",
                   # A run that keeps ending the process is dead-lettered at its second delivery.
                   HOOKFLOW_MAX_ATTEMPTS="1",
                   HOOKFLOW_VISIBILITY_TIMEOUT_SECONDS="3",
                   # Below the visibility timeout, as hookflow requires.
                   HOOKFLOW_PIPELINE_TIMEOUT_MS="2500",
                   HOOKFLOW_LOOKUP_CACHE_SECONDS="0")
        env.pop("HOOKFLOW_PUBLIC_URL", None)
        self.log = open(os.path.join(self.dir, "serve.log"), "ab")
        self.process = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.base}/api/v3/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"hookflow serve did not start: {self.tail()}")

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.log.close()

    def tail(self):
        if EXTERNAL:
            return "(a hookflow this test did not start)"
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def command(self, command_name, **params):
        """A command through the API (setup the journeys do not cover), as curl would."""
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.base}/api/v3/command/{command_name}", data=data,
                                         headers={"Authorization": f"Bearer {ADMIN}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())


def curl(*args):
    """curl, as a partner's system or an operator would call hookflow."""
    done = subprocess.run(["curl", "-s", "--max-time", "30", *args], capture_output=True, text=True, check=True)
    return done.stdout


class ConsoleJourneys(unittest.TestCase):
    """One operator's day, in order: each test builds on the ones before."""

    @classmethod
    def setUpClass(cls):
        cls.endpoint = Endpoint()
        cls.serve = Serve()
        cls.serve.start()
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        cls.driver = webdriver.Chrome(options=options, service=service)
        cls.driver.set_page_load_timeout(30)
        cls.state = {}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            cls.serve.stop()
            cls.endpoint.server.shutdown()
            shutil.rmtree(cls.serve.dir, ignore_errors=True)

    # ----- helpers -----

    def wait_for(self, condition, what):
        try:
            return WebDriverWait(self.driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda d: condition(d))
        except Exception as e:
            self.fail(f"{what} did not show within {WAIT} s ({type(e).__name__}); "
                      f"page: {self.text()[:1500]}\nserver log: {self.serve.tail()[-1500:]}")

    def find(self, css):
        return self.wait_for(lambda d: d.find_element(By.CSS_SELECTOR, css), css)

    def text(self, css="body"):
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css).text
        except WebDriverException:
            return ""

    def wait_text(self, css, expected):
        self.wait_for(lambda d: expected in self.text(css), f"{expected!r} in {css}")

    def fill(self, css, value):
        el = self.find(css)
        el.clear()
        el.send_keys(value)
        return el

    def set_value(self, css, value):
        """Sets a textarea whole (send_keys would auto-indent nothing, but is slow for YAML)."""
        el = self.find(css)
        self.driver.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", el, value)
        return el

    def click_button(self, label, within="body"):
        def button(d):
            for b in d.find_element(By.CSS_SELECTOR, within).find_elements(By.CSS_SELECTOR, "button, a.button"):
                if b.text.strip() == label and b.is_displayed() and b.is_enabled():
                    return b
            return False
        el = self.wait_for(button, f"the button {label!r}")
        el.click()
        return el

    def go(self, hash_path):
        self.driver.get(f"{self.serve.base}/console#{hash_path}")

    def shot(self, name):
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            time.sleep(0.3)  # let the last answer draw
            self.driver.save_screenshot(os.path.join(SHOTS, f"console-{name}.png"))

    def confirm(self, label):
        self.click_button(label, "dialog[open]")

    def assert_controls_labelled(self):
        unlabelled = self.driver.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
              .map(e => e.outerHTML.slice(0, 120));""")
        self.assertEqual(unlabelled, [], "controls without a label")

    def assert_no_csp_violations(self):
        logs = self.driver.get_log("browser")
        violations = [e["message"] for e in logs if "Content Security Policy" in e["message"]]
        self.assertEqual(violations, [])

    # ----- the journeys -----

    def test_01_the_page_is_served_with_strict_headers(self):
        with urllib.request.urlopen(f"{self.serve.base}/console") as answer:
            headers = answer.headers
            page = answer.read().decode()
        csp = headers["content-security-policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(headers["x-frame-options"], "DENY")
        self.assertEqual(headers["referrer-policy"], "no-referrer")
        self.assertNotIn("set-cookie", headers)
        self.assertIn('<script type="module" src="/console/app.js">', page)

    def test_02_sign_in_refuses_a_wrong_token_and_keeps_the_right_one_in_the_tab(self):
        self.go("/webhooks")
        token = self.find("form#sign-in input[type=password]")
        self.assertEqual(self.driver.switch_to.active_element, token)
        self.assertFalse(self.find("header.top").is_displayed(), "the pages' header before sign-in")
        token.send_keys("not-the-token", Keys.ENTER)  # the keyboard alone signs in
        self.wait_text("form#sign-in", "unauthorized")
        token = self.fill("form#sign-in input[type=password]", ADMIN)
        token.send_keys(Keys.ENTER)
        self.wait_text("#page-webhooks h1", "Webhooks")
        self.wait_text("#health", "healthy")
        stored = self.driver.execute_script("return sessionStorage.getItem('hookflow.adminToken')")
        self.assertEqual(stored, ADMIN)
        cookies = self.driver.get_cookies()
        self.assertEqual(cookies, [])
        self.assert_controls_labelled()

    def test_03_create_a_webhook_and_trigger_it_with_curl(self):
        self.go("/webhooks")
        self.click_button("New webhook")
        self.fill("#webhook-form input[name=eventKey]", LEAD_KEY)
        self.fill("#webhook-form input[name=description]", "leads from the CRM")
        self.assert_controls_labelled()
        self.click_button("Create", "#webhook-form")
        self.wait_text("#webhook-saved", f"Created {LEAD_KEY}")
        url = self.find("#new-webhook-url").text
        self.assertIn("/api/v3/command/webhook.receive?token=", url)
        self.wait_text("#webhook-list", "leads from the CRM")
        self.state["url"] = url
        self.state["token"] = url.split("token=")[1]
        self.shot("webhooks")

    def test_03a_a_call_shows_in_the_log_with_its_payload(self):
        answer = json.loads(curl("-X", "POST", f"{self.serve.base}/api/v3/webhook.receive",
                                 "-H", f"token: {self.state['token']}", "-H", "content-type: application/json",
                                 "-d", '{"greeting":"hello from curl"}'))
        self.assertEqual(answer["status"], "ok", answer)  # no pipeline listens yet
        self.go("/events")
        link = f"tr[data-correlation-id='{answer['correlationId']}'] a.event-link"
        self.find(link).click()
        self.wait_text("#payload", '"greeting": "hello from curl"')
        self.wait_text("#outcomes", "No pipeline listened")

    def test_03c_bytes_are_shown_in_hex_and_files_listed(self):
        base = f"{self.serve.base}/api/v3/webhook.receive"
        binary = os.path.join(self.serve.dir, "blob.bin")
        with open(binary, "wb") as f:
            f.write(bytes([0x00, 0xFF, 0x10, 0x80]) + b"PK")
        answer = json.loads(curl("-X", "POST", base, "-H", f"token: {self.state['token']}",
                                 "-H", "content-type: application/octet-stream", "--data-binary", f"@{binary}"))
        self.go(f"/events/{answer['correlationId']}")
        self.wait_text("#payload", "00000000  00 ff 10 80 50 4b")
        self.assertIn("Payload (hex)", self.text("main"))
        pdf = os.path.join(self.serve.dir, "fileA.pdf")
        with open(pdf, "w") as f:
            f.write("%PDF-1.4 A")
        answer = json.loads(curl("-X", "POST", base, "-H", f"token: {self.state['token']}",
                                 "-F", f"file=@{pdf};type=application/pdf", "-F", "lead=42"))
        self.go(f"/events/{answer['correlationId']}")
        self.wait_text("main", "fileA.pdf")
        self.assertIn("application/pdf", self.text("main"))
        self.assertIn("lead", self.text("main"))

    def test_03d_copy_puts_the_url_on_the_clipboard(self):
        if EXTERNAL:
            self.skipTest("the clipboard needs Chromium's permission, granted per origin")
        self.driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": self.serve.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
        self.go("/webhooks")
        row = f"tr[data-event-key='{LEAD_KEY}']"
        button = self.click_button("Copy", row)
        self.wait_for(lambda d: button.text == "Copied", "the button saying Copied")
        copied = self.driver.execute_async_script(
            "navigator.clipboard.readText().then(arguments[0], e => arguments[0]('failed: ' + e))")
        self.assertEqual(copied, self.state["url"])

    def test_03b_edit_a_webhook_its_sources_disable_and_rotate(self):
        # A second webhook, so the first keeps its token for the journeys below.
        self.go("/webhooks")
        self.click_button("New webhook")
        self.fill("#webhook-form input[name=eventKey]", "webhook.partner.order")
        self.click_button("Create", "#webhook-form")
        self.wait_text("#webhook-saved", "Created webhook.partner.order")
        row = "tr[data-event-key='webhook.partner.order']"
        self.click_button("Edit", row)
        self.fill("#webhook-form input[name=description]", "orders from the partner")
        self.find("#webhook-form details summary").click()  # "Inbound security"
        self.fill("#webhook-form input[name=allowedSources]", "not-an-address")
        self.click_button("Save", "#webhook-form")
        self.wait_text("#webhook-form .error", "invalid_allowed_sources")
        self.fill("#webhook-form input[name=allowedSources]", "192.0.2.0/24")
        self.click_button("Save", "#webhook-form")
        self.wait_text("#webhook-saved", "Saved webhook.partner.order")
        self.wait_text(row, "orders from the partner")
        # The rule holds: a call from loopback is refused, and the edit form shows it.
        token = self.find("#new-webhook-url").text.split("token=")[1]
        refused = json.loads(curl("-X", "POST", f"{self.serve.base}/api/v3/webhook.receive",
                                  "-H", f"token: {token}", "-d", "{}"))
        self.assertEqual(refused["error"]["code"], "source_not_allowed")
        self.click_button("Edit", row)
        self.assertEqual(self.find("#webhook-form input[name=allowedSources]").get_attribute("value"), "192.0.2.0/24")
        self.wait_text("#webhook-editor", "Refused calls: 1")
        # Rotation: a new URL, the old token working for the grace period.
        self.click_button("Rotate token")
        self.confirm("Rotate")
        self.wait_text("#webhook-editor", "New URL:")
        self.assertNotIn(token, self.text("#webhook-editor [role=status]"))
        self.assertIn("the old token works until", self.text("#webhook-editor"))
        # Disabled: its calls get 404; enabled again.
        self.click_button("Disable", row)
        self.wait_text("#page-webhooks .ok", "webhook.partner.order is disabled")
        self.wait_text(row, "disabled")
        self.click_button("Enable", row)
        self.wait_text(row, "enabled")

    def test_04_a_pipeline_with_a_typo_is_refused_at_its_line(self):
        self.serve_outgoing("crm-leads", "/leads")
        self.go("/pipelines/new")
        self.fill("#pipeline-name", "lead-to-crm")
        self.set_value("#pipeline-source", FAILING.replace("webhook.send:", "webhook.sned:"))
        self.click_button("Save")
        self.wait_text("#page-pipelines .error", "invalid_pipeline")
        self.assertIn("line 6", self.text("#page-pipelines .error"))
        self.assertEqual(self.find(".gutter .marked").text, "6")
        # Corrected: saved, and the page becomes the pipeline's own.
        self.set_value("#pipeline-source", FAILING)
        self.click_button("Save")
        self.wait_text("#page-pipelines .ok", "Saved lead-to-crm")
        self.wait_for(lambda d: d.current_url.endswith("#/pipelines/lead-to-crm"), "the pipeline's page")

    def test_05_the_event_appears_in_the_log_with_its_failure(self):
        answer = json.loads(curl("-X", "POST", self.state["url"], "-H", "content-type: application/json",
                                 "-d", '{"name":"Ada","company":"Analytical Engines"}'))
        self.assertIn(answer["status"], ("error", "processing"), answer)
        self.state["failed"] = answer["correlationId"]
        self.go("/events")
        row = f"tr[data-correlation-id='{self.state['failed']}']"
        # The log refreshes itself: the row turns to error without a reload.
        self.wait_for(lambda d: d.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "error",
                      "the failed event in the log")
        self.assertIn(LEAD_KEY, self.text(row))
        self.assertIn("lead-to-crm", self.text(row))
        Select(self.find("#filter-status")).select_by_value("ok")
        self.wait_for(lambda d: not d.find_elements(By.CSS_SELECTOR, row), "the error filtered out")
        Select(self.find("#filter-status")).select_by_value("error")
        self.find(row)
        self.assertFalse(self.find("#load-more").is_displayed(), "older events offered on the only page")
        # A time filter: nothing received since an hour from now.
        self.driver.execute_script("""document.getElementById('filter-since').value =
            new Date(Date.now() + 3600e3 - new Date().getTimezoneOffset() * 60e3).toISOString().slice(0, 16)""")
        self.click_button("Apply", "#event-filters")
        self.wait_text("#event-list", "No events match.")
        self.find("#filter-since").clear()
        self.click_button("Apply", "#event-filters")
        self.find(row)
        self.assert_controls_labelled()
        self.shot("events")

    def test_06_the_event_shows_its_decoded_payload_and_failing_step(self):
        self.go("/events")
        link = self.find(f"tr[data-correlation-id='{self.state['failed']}'] a.event-link")
        link.click()
        self.wait_text("#payload", '"name": "Ada"')
        self.assertIn('"company": "Analytical Engines"', self.text("#payload"))
        outcome = "[data-pipeline='lead-to-crm']"
        self.wait_text(outcome, "permission_denied")
        self.assertIn("webhook.send (step 3", self.text(f"{outcome} .error-step"))
        self.assertIn("content-type", self.text("body"))
        self.shot("event")

    def test_07_fix_the_pipeline_in_the_editor_against_the_event(self):
        self.click_button("Open in the editor to test")
        self.wait_for(lambda d: "pipelines/lead-to-crm" in d.current_url, "the editor")
        self.wait_for(lambda d: Select(d.find_element(By.CSS_SELECTOR, "#test-event")).first_selected_option
                      .get_attribute("value") == self.state["failed"], "the event chosen for the test")
        # The stored (failing) pipeline first: the trace ends at the failing step.
        self.click_button("Run test")
        self.wait_text("#trace", "permission_denied")
        self.assertIn("webhook.send", self.text("#trace .step-error"))
        # Fixed in the editor, tested (a dry run: nothing is sent), then saved.
        self.set_value("#pipeline-source", FIXED)
        self.click_button("Run test")
        self.wait_text("#trace", "dry run")
        self.wait_for(lambda d: "error" not in self.text("#trace .trace > p"), "the fixed run")
        steps = self.driver.find_elements(By.CSS_SELECTOR, "#trace li.step")
        self.assertEqual([s.get_attribute("data-command") for s in steps],
                         ["event.listen", "body.set", "iam.run.as", "webhook.send"])
        self.assertIn('"dryRun": true', self.text("#final-body"))
        self.assertEqual(self.endpoint.calls["/leads"], 0, "a dry run called the endpoint")
        self.shot("pipeline-test")
        self.click_button("Save")
        self.wait_text("#page-pipelines .ok", "Saved lead-to-crm")

    def test_08_replay_the_event_and_see_it_succeed(self):
        self.go(f"/events/{self.state['failed']}")
        self.click_button("Replay")
        self.wait_text("#replay-result", "Replayed as a new event")
        self.find("#replay-link").click()
        self.wait_for(lambda d: "ok" in self.text("#event-status"), "the replay's status ok")
        self.assertIn(self.state["failed"], self.text("dl.facts"))  # its replayOf
        self.state["replay"] = self.driver.current_url.split("/events/")[1]

    def test_09_an_outgoing_invocation_shows_its_attempts_and_resends(self):
        self.go("/outgoing")
        self.wait_text("#outgoing-list", "crm-leads")
        self.assertIn("********", self.text("#outgoing-list"))  # the header value, masked
        self.click_button("Invocations", "tr[data-outgoing='crm-leads']")
        link = self.find("a.invocation-link")
        link.click()
        # The endpoint answered 503 first; the retry a second later got 200.
        for _ in range(WAIT):
            if len(self.driver.find_elements(By.CSS_SELECTOR, "#attempts li")) >= 2:
                break
            time.sleep(1)
            self.driver.refresh()
        attempts = self.driver.find_elements(By.CSS_SELECTOR, "#attempts li")
        self.assertEqual(len(attempts), 2, self.text("#attempts"))
        self.assertIn("503", attempts[0].text)
        self.assertIn("200", attempts[1].text)
        self.shot("invocation")
        self.click_button("Resend")
        self.wait_text("#resend-result", "Sent again as")
        self.wait_for(lambda d: self.endpoint.calls["/leads"] >= 3, "the resend at the endpoint")

    def test_10_redrive_a_dead_letter_after_the_process_was_killed(self):
        self.serve_outgoing("silent", "/silent")
        self.serve.command("pipeline.put", name="stuck", pipeline=(
            "pipeline:\n  - event.listen: {eventKey: webhook.stuck}\n"
            "  - iam.run.as: systemuser\n  - webhook.send: silent\n"))
        stuck = self.serve.command("webhook.put", eventKey="webhook.stuck")["uuid"]
        curl("-X", "POST", f"{self.serve.base}/api/v3/webhook.receive", "-H", f"token: {stuck}", "-d", "{}")
        deadline = time.time() + WAIT
        while self.endpoint.calls["/silent"] < 1:
            self.assertLess(time.time(), deadline, "the stuck run never reached its endpoint")
            time.sleep(0.1)
        # The run is inside its step when the process dies; the next process
        # hands the job out a second time, past HOOKFLOW_MAX_ATTEMPTS=1.
        self.serve.kill9()
        self.serve.start()
        # Counted (queue.get) before listed: on SQS a list scans the dead-letter
        # queue by receiving, and scans at once each see only part of it.
        deadline = time.time() + WAIT * 2
        while self.serve.command("queue.get")["deadLetters"] < 1:
            self.assertLess(time.time(), deadline, "no dead letter after the restart")
            time.sleep(0.5)
        self.go("/deadletters")
        row = "#dead-letter-list tr[data-dead-letter]"
        self.wait_text(row, "stuck")
        self.assertIn("pipeline", self.text(row))
        self.shot("dead-letters")
        self.click_button("Redrive", row)
        self.wait_text("#page-deadletters .ok", "back in the queue")
        self.wait_text("#dead-letter-list", "No dead letters")
        self.wait_for(lambda d: "queue" in self.text("#figure-queue") and "dead 0" in self.text("#figure-queue"),
                      "the header's queue figures")

    def test_11_readable_at_375_px(self):
        self.driver.set_window_size(375, 800)
        try:
            for page in ["/webhooks", "/events", f"/events/{self.state['failed']}", "/pipelines/lead-to-crm",
                         "/deadletters"]:
                self.go(page)
                self.find("main h1")
                time.sleep(0.3)
                width = self.driver.execute_script("return document.documentElement.scrollWidth")
                viewport = self.driver.execute_script("return window.innerWidth")
                self.assertLessEqual(width, viewport, f"{page} scrolls sideways at 375 px")
            self.go(f"/events/{self.state['failed']}")
            self.find("#outcomes").location_once_scrolled_into_view
            self.shot("event-375px")
        finally:
            self.driver.set_window_size(1280, 900)

    def test_12_delete_asks_first_and_errors_are_shown_with_their_code(self):
        self.go("/webhooks")
        row = "tr[data-event-key='webhook.stuck']"
        self.click_button("Delete", row)
        self.confirm("Cancel")
        self.find(row)
        self.click_button("Delete", row)
        self.confirm("Delete")
        self.wait_text("#page-webhooks .ok", "webhook.stuck was deleted")
        # An API error is shown with its code and message, never swallowed.
        self.go("/events/0c0e5b4e-3c59-4f5e-9c46-2e2a1c0f0b3a")
        self.wait_text("#page-events .error", "event_not_found")
        self.assert_no_csp_violations()

    def test_13_a_pasted_body_is_tested_too(self):
        self.go("/pipelines/lead-to-crm")
        self.find("#input-sample").click()
        sample = {"payload": {"origin": "eyJuYW1lIjoiR3JhY2UifQ=="}}  # {"name":"Grace"}
        self.set_value("#test-sample", json.dumps(sample))
        self.click_button("Run test")
        self.wait_text("#final-body", '"dryRun": true')
        self.assertIn("Grace", self.text("#final-body"))
        # A body that is not JSON is refused with hookflow's code.
        self.set_value("#test-sample", "{not json")
        self.click_button("Run test")
        self.wait_text("#page-pipelines .error", "invalid_sample")

    def test_14_the_keyboard_alone_gets_around(self):
        self.go("/webhooks")
        self.find("#webhook-list")
        body = self.driver.find_element(By.TAG_NAME, "body")
        for _ in range(40):
            if self.driver.execute_script("return document.activeElement.textContent") == "Events":
                break
            body.send_keys(Keys.TAB)
            body = self.driver.switch_to.active_element
        self.assertEqual(self.driver.switch_to.active_element.text, "Events", "Tab never reached the Events link")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait_text("#page-events h1", "Events")
        # A confirmation closes with Escape, and nothing is deleted.
        self.go("/webhooks")
        self.click_button("Delete", "tr[data-event-key='webhook.partner.order']")
        self.find("dialog[open]")
        self.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.wait_for(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), "the dialog closed")
        self.find("tr[data-event-key='webhook.partner.order']")

    def serve_outgoing(self, webhook_id, path):
        body = json.dumps({"id": webhook_id, "url": self.endpoint.url(path), "method": "POST",
                           "headers": {"Authorization": "Bearer crm-key"}}).encode()
        request = urllib.request.Request(f"{self.serve.base}/api/v3/command/outgoing.put", data=body,
                                         headers={"Authorization": f"Bearer {ADMIN}",
                                                  "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()


# What runs against a hookflow the test did not start.
FUNCTION_JOURNEYS = [
    "test_01_the_page_is_served_with_strict_headers",
    "test_02_sign_in_refuses_a_wrong_token_and_keeps_the_right_one_in_the_tab",
    "test_03_create_a_webhook_and_trigger_it_with_curl",
    "test_03a_a_call_shows_in_the_log_with_its_payload",
    "test_03c_bytes_are_shown_in_hex_and_files_listed",
]

if __name__ == "__main__":
    names = [f"ConsoleJourneys.{name}" for name in FUNCTION_JOURNEYS] if EXTERNAL else None
    result = unittest.main(exit=False, verbosity=2, failfast=True, defaultTest=names).result
    failed = len(result.failures) + len(result.errors)
    print(f"console ({EXTERNAL or BACKEND}): {result.testsRun - failed} passed, {failed} failed")
    raise SystemExit(1 if failed or not result.wasSuccessful() else 0)
