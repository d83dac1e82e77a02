"""Signs a webhook call the way a sender does, with the sender's own library,
for the integration tests of hookflow's signature verification: Standard
Webhooks with PyPI `standardwebhooks`, Stripe with PyPI `stripe`.

Reads one JSON object on standard input (so the secret is never on a command
line): {"scheme": "standard-webhooks" | "stripe" (default the first),
"secret": "whsec_...", "id": "msg_..." (standard-webhooks only),
"timestamp": <unix seconds>, "body": "<the body, as text>"}.

Prints the headers to send as one JSON object; exits 2 when the input is unusable.
"""

import datetime
import json
import sys

import stripe
from standardwebhooks import Webhook


def main() -> int:
    try:
        given = json.load(sys.stdin)
        scheme = given.get("scheme", "standard-webhooks")
        secret = given["secret"]
        seconds = int(given["timestamp"])
        body = str(given["body"])
        msg_id = str(given["id"]) if scheme == "standard-webhooks" else None
        if scheme not in ("standard-webhooks", "stripe"):
            raise ValueError(f"no signer for scheme {scheme}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"unusable input: {e!r}", file=sys.stderr)
        return 2
    if scheme == "stripe":
        header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=seconds)
        print(json.dumps({"Stripe-Signature": header}))
        return 0
    timestamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
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
