"""Promote an image: give it a release tag by digest (the manifest is copied with put_image; no layer is pulled
or pushed), so the release tag names exactly the bytes that were tested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from stacks.ops import OpsError, error_code

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

#: Manifest types ECR may return; asking for all of them keeps multi-arch indexes and OCI images intact.
MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]


@dataclass(frozen=True)
class Promotion:
    """Result of a promotion: the digest both tags now name, and whether the target tag was new."""

    repository: str
    digest: str
    target_tag: str
    created: bool


def digest_of(ecr: ECRClient, repository: str, tag: str) -> str | None:
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as exc:
        if error_code(exc) == "ImageNotFoundException":
            return None
        raise
    details = found.get("imageDetails", [])
    return details[0]["imageDigest"] if details else None


def promote_image(ecr: ECRClient, repository: str, source_tag: str, target_tag: str) -> Promotion:
    """Give the image at `source_tag` the extra tag `target_tag`, by digest, without pulling it."""
    if source_tag == target_tag:
        raise OpsError(f"source and target tag are both '{source_tag}': choose a different --target-tag")
    try:
        response = ecr.batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": source_tag}], acceptedMediaTypes=MANIFEST_TYPES
        )
    except ClientError as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            raise OpsError(
                f"ECR repository '{repository}' does not exist; check the name (pulumi stack output "
                "apiRepositoryUrl) and the region"
            ) from None
        raise
    images = response.get("images", [])
    if not images:
        reasons = "; ".join(
            f"{failure.get('failureCode', '?')}: {failure.get('failureReason', '')}"
            for failure in response.get("failures", [])
        )
        raise OpsError(
            f"image {repository}:{source_tag} not found ({reasons or 'no image returned'}); push it before promoting"
        )
    image = images[0]
    digest = image["imageId"]["imageDigest"]

    existing = digest_of(ecr, repository, target_tag)
    if existing == digest:
        return Promotion(repository, digest, target_tag, created=False)
    if existing is not None:
        raise OpsError(
            f"{repository}:{target_tag} already names {existing}, not {digest}; tags are immutable, "
            "so promote under a new tag"
        )
    put: dict[str, Any] = {
        "repositoryName": repository,
        "imageManifest": image["imageManifest"],
        "imageTag": target_tag,
        "imageDigest": digest,
    }
    if image.get("imageManifestMediaType"):
        put["imageManifestMediaType"] = image["imageManifestMediaType"]
    try:
        ecr.put_image(**put)
    except ClientError as exc:
        if error_code(exc) in {"ImageAlreadyExistsException", "ImageTagAlreadyExistsException"}:
            if digest_of(ecr, repository, target_tag) == digest:
                return Promotion(repository, digest, target_tag, created=False)
            raise OpsError(f"{repository}:{target_tag} was taken by another image meanwhile; use a new tag") from None
        raise
    return Promotion(repository, digest, target_tag, created=True)
