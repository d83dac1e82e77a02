"""moto's server, with its DynamoDB operations run one at a time.

DynamoDB transactions are atomic and isolated. moto's are not under its threaded
server: a cancelled TransactWriteItems puts back a copy of the whole table taken
when it started, which undoes every write other requests made meanwhile (and
brings back items of other cancelled ones). Racing conditional transactions, as
`dedup` sends when 32 copies of one delivery arrive at once, then lose the event
that won. Holding one lock around each DynamoDB operation gives them the
isolation DynamoDB itself guarantees; other services stay concurrent (an SQS
long poll must not hold up the rest).

Same arguments as `moto_server`.
"""

import functools
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_one_at_a_time = threading.RLock()


def _isolated(operation):
    @functools.wraps(operation)
    def run(*args, **kwargs):
        with _one_at_a_time:
            return operation(*args, **kwargs)

    return run


for _name in ("get_item", "put_item", "update_item", "delete_item", "query", "scan", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _isolated(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main()
