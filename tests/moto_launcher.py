"""moto server with three repairs, where moto falls short of the AWS behaviour sdp relies on.
Usage: as `moto_server`.

1. After ExecuteChangeSet, moto applies the resources but never recomputes the stack's outputs, so
   a stack deployed through a change set has none (DESIGN.md §3). Real CloudFormation has them.
2. moto's Kinesis shard numbers a new record as "highest sequence number + 1" and files it under
   that number, without a lock; the server is threaded, so two concurrent PutRecords can take the
   same number and the second overwrites the first: an acknowledged record is lost. Real Kinesis
   never loses an acknowledged record. Found by reading moto's code after one end-to-end run lost a
   bid (330 of 331 posted concurrently); not reproduced in reruns, so a rare race, not a proven one.
3. A KMS key created by moto's CloudFormation keeps its KeyPolicy as a dict, while moto's KMS
   policy check parses it as a JSON string: every later call on the key answers HTTP 500.
"""
import json
import sys
import threading

from moto.cloudformation import models
from moto.kinesis import models as kinesis
from moto.kms import responses as kms_responses
from moto.server import main

_execute = models.CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    _execute(self, change_set_name, stack_name)
    for change_set in self.change_sets.values():
        if change_set_name in (change_set.change_set_id, change_set.change_set_name):
            stack = self.stacks[change_set.stack_id]
            stack.template_dict = change_set.template_dict
            stack.output_map = stack._create_output_map()


models.CloudFormationBackend.execute_change_set = execute_change_set

_put_record = kinesis.Shard.put_record
_shard_lock = threading.Lock()


def put_record(self, *args, **kwargs):
    with _shard_lock:
        return _put_record(self, *args, **kwargs)


kinesis.Shard.put_record = put_record

_validate_policy = kms_responses.validate_policy


def validate_policy(key, action):
    if isinstance(key.policy, dict):
        key.policy = json.dumps(key.policy)
    return _validate_policy(key, action)


kms_responses.validate_policy = validate_policy

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
