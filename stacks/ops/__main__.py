"""`python -m stacks.ops COMMAND`: the operations CI and operators run around a deployment.

Exit status: 0 ok, 1 failed or unhealthy, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import boto3
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from stacks.config import ENVIRONMENT_PATTERN, ConfigError
from stacks.ops import OpsError
from stacks.ops.bootstrap import bootstrap, check_model, next_steps
from stacks.ops.ci_roles import CiSetup, ci_roles
from stacks.ops.promote import promote_image
from stacks.ops.render import render_objects, stack_file_settings, write_objects
from stacks.ops.review_state import state_problems
from stacks.ops.scan import scan_problems
from stacks.ops.verify import check_ecs, check_eks, served_model_problems, wait_until_healthy

EXAMPLES = """examples:
  python -m stacks.ops bootstrap --repository acme/diabetes --environment dev --region eu-west-1 \\
      --state-bucket acme-diabetes-pulumi-dev --model artifacts/model
  python -m stacks.ops ci-roles --repository acme/diabetes --environment dev --account-id 111122223333 \\
      --region eu-west-1 --state-bucket acme-pulumi-state --kms-key-id 1234abcd-12ab-34cd-56ef-1234567890ab
  python -m stacks.ops model-digest artifacts/model
  python -m stacks.ops scan-findings --repository diabetes-dev/api --tag 3f2c1ab --fail-on CRITICAL
  python -m stacks.ops promote-image --repository diabetes-dev/api --source-tag 3f2c1ab --target-tag release-1.4.0
  python -m stacks.ops verify-ecs --cluster diabetes-dev-ecs --service diabetes-dev-ecs-api-1a2b3c4
  python -m stacks.ops verify-eks --cluster diabetes-dev-eks --fargate-profile <name> --fargate-profile <name>
  python -m stacks.ops render-k8s --api-image <registry>/diabetes-dev/api:3f2c1ab \\
      --ui-image <registry>/diabetes-dev/ui:3f2c1ab --namespace diabetes --output k8s/ \\
      --load-balancer-subnet 10.40.0.0/20 --load-balancer-subnet 10.40.16.0/20

exit status: 0 success, 1 operation failed or deployment unhealthy, 2 bad arguments
"""


def _served_model(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--url", help="the service's URL (stack output): also require /ready with a real-data model")
    sub.add_argument(
        "--allow-synthetic", action="store_true", help="accept a synthetic-data model (this environment tests only)"
    )


def _environment(text: str) -> str:
    if not re.fullmatch(ENVIRONMENT_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: 1 to 16 lower-case letters and digits, no hyphen (an environment named like another's plus "
            "a hyphen, dev and dev-2, would share the names its roles are granted on)"
        )
    return text


def _region_option(sub: argparse.ArgumentParser) -> None:
    """`--region` after the command too (the top-level one must come before it)."""
    sub.add_argument("--region", dest="sub_region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")


def _waiting(sub: argparse.ArgumentParser, default_timeout: float) -> None:
    sub.add_argument("--timeout", type=float, default=default_timeout, help=f"seconds to wait ({default_timeout:g})")
    sub.add_argument("--interval", type=float, default=15.0, help="seconds between checks (15)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.ops",
        description="Deployment operations: CI roles, model digest, image scan and promotion, rollout checks, "
        "the app's Kubernetes objects as YAML.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _setup_commands(commands)
    _image_commands(commands)
    _rollout_commands(commands)
    _stack_file_commands(commands)
    return parser


def _setup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Once per account and environment: the CI roles, the bootstrap, a model's digest."""
    roles = commands.add_parser("ci-roles", help="print the CI roles' trust and permission policies as JSON")
    roles.add_argument("--repository", required=True, help="GitHub repository, owner/name")
    roles.add_argument(
        "--environment", required=True, type=_environment, help="GitHub environment = stack name, e.g. dev"
    )
    roles.add_argument("--account-id", required=True, help="AWS account id")
    roles.add_argument("--region", dest="role_region", required=True, help="region of the stacks")
    roles.add_argument("--state-bucket", required=True, help="S3 bucket of the Pulumi state")
    roles.add_argument("--kms-key-id", required=True, help="id of the KMS key of the stacks' secrets provider")
    roles.add_argument("--project", default="diabetes", help="project prefix of every name (diabetes)")

    boot = commands.add_parser(
        "bootstrap", help="once per account and environment: state bucket, KMS alias, boundary, CI roles, model"
    )
    boot.add_argument("--repository", required=True, help="GitHub repository, owner/name")
    boot.add_argument(
        "--environment", required=True, type=_environment, help="GitHub environment = stack name, e.g. dev"
    )
    boot.add_argument("--region", dest="role_region", required=True, help="region of the stacks")
    boot.add_argument(
        "--state-bucket", required=True, help="this environment's own S3 bucket for Pulumi's state and released models"
    )
    boot.add_argument("--kms-alias", help="alias of this environment's secrets key (alias/<project>-<env>-pulumi)")
    boot.add_argument(
        "--reviewer", action="append", default=[], help="GitHub login who must approve deployments (repeatable)"
    )
    boot.add_argument("--project", default="diabetes", help="project prefix of every name (diabetes)")
    boot.add_argument("--model", type=Path, help="model folder to release (trained on the real file)")
    boot.add_argument("--allow-synthetic", action="store_true", help="accept a synthetic-data model (tests only)")

    digest = commands.add_parser("model-digest", help="print the digest that pins a model directory (modelSha256)")
    digest.add_argument("directory", type=Path, help="model directory, e.g. artifacts/model")
    digest.add_argument(
        "--allow-synthetic", action="store_true", help="accept a model trained on synthetic data (refused by default)"
    )


def _image_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """An image in ECR: its scan's findings, and promotion to a release tag by digest."""
    scan = commands.add_parser("scan-findings", help="wait for an image's ECR scan; fail on blocking severities")
    scan.add_argument("--repository", required=True, help="ECR repository name, e.g. diabetes-dev/api")
    scan.add_argument("--tag", required=True, help="the pushed tag")
    scan.add_argument("--fail-on", action="append", default=[], help="blocking severity (repeatable; CRITICAL)")
    _waiting(scan, 300.0)
    _region_option(scan)

    promote = commands.add_parser(
        "promote-image", help="tag an existing image with a release tag, by digest (no pull/push of layers)"
    )
    promote.add_argument("--repository", required=True, help="ECR repository name, e.g. diabetes-dev/api")
    promote.add_argument("--source-tag", required=True, help="tag that exists, e.g. the git sha CI pushed")
    promote.add_argument("--target-tag", required=True, help="new tag, e.g. release-1.4.0")
    _region_option(promote)


def _rollout_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """After `pulumi up`: wait until the ECS services or the EKS cluster run what was deployed."""
    ecs = commands.add_parser("verify-ecs", help="wait until an ECS service finished its rollout, targets healthy")
    ecs.add_argument("--cluster", required=True, help="cluster name (pulumi stack output ecsClusterName)")
    ecs.add_argument("--service", required=True, help="ECS service name (ecsServiceNames)")
    ecs.add_argument(
        "--target-group-arn",
        action="append",
        default=[],
        help="target group to check (repeatable; default: the service's own target groups)",
    )
    ecs.add_argument("--min-count", type=int, default=1, help="fewest desired tasks accepted (1)")
    ecs.add_argument("--image-tag", help="also require the primary deployment to run this image tag")
    _served_model(ecs)
    _waiting(ecs, 600.0)
    _region_option(ecs)

    eks = commands.add_parser("verify-eks", help="wait until an EKS cluster and its Fargate profiles are ACTIVE")
    eks.add_argument("--cluster", required=True, help="cluster name (pulumi stack output eksClusterName)")
    eks.add_argument("--fargate-profile", action="append", required=True, help="Fargate profile name (repeatable)")
    _served_model(eks)
    _waiting(eks, 600.0)
    _region_option(eks)


def _stack_file_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """From a stack's state or settings: review an export before destroy, render the Kubernetes objects."""
    review = commands.add_parser(
        "review-state", help="refuse a stack export whose providers would run more than the programs' (before destroy)"
    )
    review.add_argument("export", help="`pulumi stack export --show-secrets` output, a file or - for stdin")
    review.add_argument("--stack", required=True, help="the stack (environment) the export is of, e.g. dev")
    review.add_argument("--project", default="diabetes", help="project prefix of every name (diabetes)")

    render = commands.add_parser("render-k8s", help="write the app's Kubernetes objects as YAML files")
    render.add_argument("--api-image", required=True, help="full image reference of the api target")
    render.add_argument("--ui-image", help="full image reference of the ui target (when the stack enables the UI)")
    render.add_argument("--namespace", required=True, help="namespace to deploy into")
    render.add_argument(
        "--stack-file", type=Path, default=Path("stacks/eks/Pulumi.dev.yaml"), help="sizes, probes, routes from"
    )
    render.add_argument("--api-role-arn", help="IAM role the api's service account assumes (an S3 model)")
    render.add_argument("--access-log-bucket", help="S3 bucket for the ALB's access logs")
    render.add_argument(
        "--load-balancer-subnet",
        action="append",
        required=True,
        metavar="CIDR",
        help="CIDR of a public subnet the ALB is in (repeat for each): the only proxies the API trusts to name the "
        "client in X-Forwarded-For",
    )
    render.add_argument("--output", type=Path, required=True, help="folder for the YAML files")
    _region_option(render)


def _ci_roles(args: argparse.Namespace) -> str:
    setup = CiSetup(
        repository=args.repository,
        environment=args.environment,
        account_id=args.account_id,
        region=args.role_region,
        state_bucket=args.state_bucket,
        kms_key_id=args.kms_key_id,
        project=args.project,
    )
    return json.dumps(ci_roles(setup), indent=2)


def _model_digest(args: argparse.Namespace) -> str:
    return check_model(args.directory, allow_synthetic=args.allow_synthetic)


def _bootstrap(args: argparse.Namespace) -> str:
    session = _session(args)
    account = session.client("sts").get_caller_identity()["Account"]
    setup = CiSetup(
        repository=args.repository,
        environment=args.environment,
        account_id=account,
        region=args.role_region,
        state_bucket=args.state_bucket,
        kms_key_id="",
        project=args.project,
    )
    done = bootstrap(
        session,
        setup,
        kms_alias=args.kms_alias,
        model=args.model,
        allow_synthetic=args.allow_synthetic,
        reviewers=tuple(args.reviewer),
    )
    return next_steps(done)


def _review_state(args: argparse.Namespace) -> str:
    text = sys.stdin.read() if args.export == "-" else Path(args.export).read_text()
    try:
        export = json.loads(text)
    except ValueError as exc:
        raise OpsError(f"{args.export} is not a `pulumi stack export` (JSON): {exc}") from None
    problems = state_problems(export, args.stack, args.project)
    if problems:
        raise OpsError(
            "do not destroy or refresh this state with your credentials:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return f"state of {args.stack}: every provider is configured as the programs configure it"


def _render_k8s(args: argparse.Namespace) -> str:
    tag = args.api_image.rsplit(":", 1)[-1] if ":" in args.api_image else "untagged"
    settings = stack_file_settings(args.stack_file, args.namespace, tag, _region(args))
    images = {"api": args.api_image, **({"ui": args.ui_image} if args.ui_image else {})}
    objects = render_objects(settings, images, args.api_role_arn, args.access_log_bucket, args.load_balancer_subnet)
    return "\n".join(str(path) for path in write_objects(objects, args.output))


def _region(args: argparse.Namespace) -> str | None:
    """The region, wherever it was given: the command's own option, or the one before the command."""
    region: str | None = getattr(args, "role_region", None) or getattr(args, "sub_region", None) or args.region
    return region


def _session(args: argparse.Namespace) -> boto3.session.Session:
    return boto3.session.Session(region_name=_region(args))


def _promote_image(args: argparse.Namespace) -> str:
    result = promote_image(_session(args).client("ecr"), args.repository, args.source_tag, args.target_tag)
    verb = "tagged" if result.created else "already tagged"
    return f"{result.repository}@{result.digest} {verb} {result.target_tag}"


def _scan_findings(args: argparse.Namespace) -> str:
    ecr = _session(args).client("ecr")
    blocking = args.fail_on or ["CRITICAL"]
    wait_until_healthy(
        lambda: scan_problems(ecr, args.repository, args.tag, blocking),
        f"scan of {args.repository}:{args.tag}",
        timeout=args.timeout,
        interval=args.interval,
    )
    return f"{args.repository}:{args.tag}: scan complete, no {', '.join(blocking)} findings"


def _model_problems(args: argparse.Namespace) -> list[str]:
    return served_model_problems(args.url, allow_synthetic=args.allow_synthetic) if args.url else []


def _verify_ecs(args: argparse.Namespace) -> str:
    session = _session(args)
    ecs, elbv2 = session.client("ecs"), session.client("elbv2")
    wait_until_healthy(
        lambda: (
            check_ecs(
                ecs,
                elbv2=elbv2,
                cluster=args.cluster,
                service_name=args.service,
                target_group_arns=args.target_group_arn,
                min_count=args.min_count,
                image_tag=args.image_tag,
            )
            or _model_problems(args)
        ),
        f"ECS service {args.service}",
        timeout=args.timeout,
        interval=args.interval,
    )
    return f"ECS service {args.service} in {args.cluster}: rollout completed, all targets healthy"


def _verify_eks(args: argparse.Namespace) -> str:
    eks = _session(args).client("eks")
    wait_until_healthy(
        lambda: check_eks(eks, args.cluster, args.fargate_profile) or _model_problems(args),
        f"EKS cluster {args.cluster}",
        timeout=args.timeout,
        interval=args.interval,
    )
    return f"EKS cluster {args.cluster} and Fargate profiles {', '.join(args.fargate_profile)} are ACTIVE"


COMMANDS: dict[str, Callable[[argparse.Namespace], str]] = {
    "bootstrap": _bootstrap,
    "ci-roles": _ci_roles,
    "model-digest": _model_digest,
    "render-k8s": _render_k8s,
    "review-state": _review_state,
    "promote-image": _promote_image,
    "scan-findings": _scan_findings,
    "verify-ecs": _verify_ecs,
    "verify-eks": _verify_eks,
}


def run(args: argparse.Namespace) -> str:
    """Execute one parsed command; returns what to print."""
    return COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 on success, 1 when the operation or verification failed, 2 for bad arguments."""
    args = _parser().parse_args(argv)
    try:
        print(run(args))
    except (OpsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Boto3Error as exc:  # an upload that failed (S3UploadFailedError), a resource that does not exist
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: AWS refused {exc.operation_name}: {exc}", file=sys.stderr)
        return 1
    except BotoCoreError as exc:
        print(f"error: cannot reach AWS ({exc}); check credentials, AWS_REGION and network", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
