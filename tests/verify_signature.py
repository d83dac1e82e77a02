"""Verifies a received outgoing-webhook call with the independent Standard
Webhooks library (PyPI `standardwebhooks`), for the integration tests.

Reads one JSON object on standard input (so the secret is never on a command
line): {"secret": "whsec_...", "headers": {"name": "value", ...},
"body": "<base64 of the body bytes>"}.

Exits 0 when `Webhook(secret).verify(body, headers)` passes, 1 when it refuses
(the reason on stderr), 2 when the input is unusable.
"""

import base64
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def main() -> int:
    try:
        given = json.load(sys.stdin)
        secret = given["secret"]
        headers = {str(k): str(v) for k, v in given["headers"].items()}
        body = base64.b64decode(given["body"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"unusable input: {e!r}", file=sys.stderr)
        return 2
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError as e:
        print(f"verification failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
