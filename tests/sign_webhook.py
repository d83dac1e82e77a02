"""Signs a webhook call the way a Standard Webhooks sender does, with the
independent library (PyPI `standardwebhooks`), for the integration tests of
hookflow's signature verification.

Reads one JSON object on standard input (so the secret is never on a command
line): {"secret": "whsec_...", "id": "msg_...", "timestamp": <unix seconds>,
"body": "<the body, as text>"}.

Prints the headers to send as one JSON object; exits 2 when the input is unusable.
"""

import datetime
import json
import sys

from standardwebhooks import Webhook


def main() -> int:
    try:
        given = json.load(sys.stdin)
        secret = given["secret"]
        msg_id = str(given["id"])
        timestamp = datetime.datetime.fromtimestamp(int(given["timestamp"]), tz=datetime.timezone.utc)
        body = str(given["body"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"unusable input: {e!r}", file=sys.stderr)
        return 2
    signature = Webhook(secret).sign(msg_id, timestamp, body)
    print(
        json.dumps(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": signature,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
