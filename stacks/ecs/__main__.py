"""Entry point of the `stacks/ecs` project (`pulumi up -C stacks/ecs -s dev`)."""

from stacks.config import EcsStackSettings, load_settings
from stacks.ecs.program import build

build(load_settings(EcsStackSettings))
