"""Entry point of the root project (Pulumi.yaml `main: stacks/`): the shared ECR repositories, VPC and buckets."""

from stacks.config import SharedSettings, load_settings
from stacks.root import build

build(load_settings(SharedSettings))
