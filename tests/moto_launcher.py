"""moto server with one repair (DESIGN.md §3): after ExecuteChangeSet, moto applies the resources
but never recomputes the stack's outputs, so a stack deployed through a change set has none. Real
CloudFormation has them; sdp's deploy relies on them. Usage: as `moto_server`."""
import sys

from moto.cloudformation import models
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

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
