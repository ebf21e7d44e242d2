"""``python -m service.policy_tools``: the ``tokengate policy`` commands without the rest of the application."""

from service.policy_tools.cli import policy_group

policy_group(prog_name="tokengate policy")
