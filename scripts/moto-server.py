"""A DynamoDB server for hop's tests: moto, single-threaded.

moto_server serves each request on its own thread, and its transactions
are not atomic under concurrency (two racing TransactWriteItems can both
pass the same attribute_not_exists). One thread serves one request at a
time, so every transaction is atomic. Usage: moto-server.py PORT

Two changes to moto, for speed only (the same answers, in milliseconds):
- TransactWriteItems deep-copied the whole table once per action, to roll
  back a cancelled transaction (a 100-action transaction on a table of 5 000
  items took seconds). Here a transaction remembers only the items it
  touches and puts them back when cancelled.
- A Query on the table (not an index) sorted every item of the table to
  pick one partition's. Here it reads that partition only.
"""

import copy
import signal
import sys

import moto.dynamodb.models as models

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple



class _NoTableCopy:
    """`copy` for moto's DynamoDB backend: tables are not copied."""

    @staticmethod
    def deepcopy(value):
        if isinstance(value, models.Table):
            return value
        return copy.deepcopy(value)


models.copy = _NoTableCopy
_transact = models.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    saved = []
    for action in transact_items:
        _, op = next(iter(action.items()))
        name = op.get("TableName")
        if name not in self.tables:
            continue
        table = self.tables[name]
        if "Item" in op:
            key = {table.hash_key_attr: op["Item"].get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"].get(table.range_key_attr)
        else:
            key = op.get("Key")
        if not key or any(v is None for v in key.values()):
            continue
        old = self.get_item(name, key)
        saved.append((name, key, None if old is None else old.to_json()["Attributes"]))
    try:
        return _transact(self, transact_items)
    except Exception:
        for name, key, old in reversed(saved):
            table = self.tables[name]
            hash_value, range_value = self.get_keys_value(table, key)
            if table.get_item(hash_value, range_value) is not None:
                table.delete_item(hash_value, range_value)
            if old is not None:
                self.put_item(name, old)
        raise


models.DynamoDBBackend.transact_write_items = _transact_write_items

_all_items = models.Table.all_items
_query = models.Table.query


def _partition_items(self):
    only = getattr(self, "_hop_partition", None)
    if only is None:
        return _all_items(self)
    part = self.items.get(only)
    if part is None:
        return []
    items = list(part.values()) if self.range_key_attr else [part]
    return sorted(items, key=lambda x: x.range_key if x.range_key else x.hash_key)


def _partition_query(self, hash_key, *args, **kwargs):
    # moto passes index_name as the 8th positional argument.
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is not None or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    self._hop_partition = hash_key
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        self._hop_partition = None


models.Table.all_items = _partition_items
models.Table.query = _partition_query

class _Handler(MotoRequestHandler):
    """Logs each request's DynamoDB operation (bench/dynamodb.sh counts them)."""

    def log_request(self, code="-", size="-"):
        target = self.headers.get("X-Amz-Target", "-").rsplit(".", 1)[-1]
        sys.stderr.write(f"{self.command} {code} {target}\n")


# A clean exit on SIGTERM (the tests' watchdog stops it so).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
port = int(sys.argv[1])
run_simple(
    "127.0.0.1",
    port,
    DomainDispatcherApplication(create_backend_app),
    threaded=False,
    processes=1,
    use_reloader=False,
    request_handler=_Handler,
)
