#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the tests, storing every accepted message
as a JSON file: {mailFrom, rcptTos, subject, from, to, cc, body (decoded text)}.

It offers AUTH (PLAIN, LOGIN) without TLS and takes one login, SINK_LOGIN with
SINK_PASSWORD; a mail sent after logging in records it as "login".

Recipients steer it, so tests can provoke the failures a worker must survive:
  slow-…@…   waits 1.5 s before accepting the message;
  flaky-…@…  answers 451 (try again later) to the first two attempts per subject.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import time
import uuid
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SINK_LOGIN = "hookflow"
SINK_PASSWORD = "sink-password"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == SINK_LOGIN
        and auth_data.password.decode() == SINK_PASSWORD
    )
    return AuthResult(success=ok, auth_data=SINK_LOGIN if ok else None)


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.attempts = {}

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        subject = str(message.get("subject", ""))
        recipients = list(envelope.rcpt_tos)
        if any(r.startswith("flaky-") for r in recipients):
            attempt = self.attempts.get(subject, 0) + 1
            self.attempts[subject] = attempt
            if attempt <= 2:
                return "451 4.3.0 Try again later"
        if any(r.startswith("slow-") for r in recipients):
            await asyncio.sleep(1.5)
        text = message.get_body(preferencelist=("plain",))
        record = {
            "mailFrom": envelope.mail_from,
            "rcptTos": recipients,
            "subject": subject,
            "from": str(message.get("from", "")),
            "to": str(message.get("to", "")),
            "cc": str(message.get("cc", "")),
            "body": text.get_content() if text is not None else "",
            "login": session.auth_data if session.authenticated else None,
        }
        name = f"{time.time_ns()}-{uuid.uuid4().hex}"
        temporary = os.path.join(self.directory, f".{name}.tmp")
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(temporary, os.path.join(self.directory, f"{name}.json"))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, help="where accepted messages are written")
    parser.add_argument("--port-file", required=True, help="written with the port once listening")
    args = parser.parse_args()
    port = free_port()
    controller = Controller(
        Sink(args.dir),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    stopped = False

    def stop(*_):
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopped:
        time.sleep(0.2)
    controller.stop()


if __name__ == "__main__":
    main()
