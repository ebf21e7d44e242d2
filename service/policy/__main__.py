"""``python -m service.policy``: the ``tokengate policy`` commands without the rest of the application."""

from service.policy.cli import policy_group

policy_group(prog_name="tokengate policy")
