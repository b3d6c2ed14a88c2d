"""ECR repositories for the two image targets: `<project>-<env>/api` and `<project>-<env>/ui`.

Both targets come from the one Dockerfile and are pushed under the same tag (the git sha), each to its own
repository, so a rollout names one tag for both. Tags are immutable (a sha always means the same bytes), every
push is scanned, and a lifecycle policy bounds storage to the last N images while keeping promoted `release-*`
tags.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.config import SharedSettings
from stacks.shared import TARGETS

#: Tags promoted by `stacks.ops promote-image` start with this; the lifecycle policy keeps them longest.
RELEASE_PREFIX = "release-"


def lifecycle_policy(keep_last: int) -> str:
    """Keep the last N release images, drop untagged after a day, keep the last N of any kind."""
    rules: list[dict[str, Any]] = [
        {
            "rulePriority": 1,
            "description": f"keep the last {keep_last} release images",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": [RELEASE_PREFIX],
                "countType": "imageCountMoreThan",
                "countNumber": keep_last,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": "expire untagged images after one day",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 1,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": f"keep the last {keep_last} images",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_last},
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules})


class Registry(pulumi.ComponentResource):
    """One scanned, immutable ECR repository per image target."""

    repositories: dict[str, aws.ecr.Repository]

    def __init__(self, name: str, settings: SharedSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("diabetes:shared:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repositories = {}
        for target in TARGETS:
            repository = aws.ecr.Repository(
                f"{name}-{target}",
                name=f"{settings.name}/{target}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
                tags=settings.tags_for("registry"),
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{target}",
                repository=repository.name,
                policy=lifecycle_policy(settings.ecr_keep_last),
                opts=child,
            )
            self.repositories[target] = repository
        self.register_outputs({})
