"""Entry point of the `stacks/eks` project (`pulumi up -C stacks/eks -s dev`)."""

from stacks.config import EksStackSettings, load_settings
from stacks.eks.program import build

build(load_settings(EksStackSettings))
