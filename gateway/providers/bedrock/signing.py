"""AWS credentials and SigV4 signing, from botocore (the `bedrock` extra).

Credentials come from botocore's standard chain, as the AWS CLI and SDKs find them: environment
variables, the shared credentials and config files (a deployment's `options.aws_profile` picks a
profile), a role assumed with a web identity token (Kubernetes IRSA, `AWS_WEB_IDENTITY_TOKEN_FILE`
and `AWS_ROLE_ARN`), container and instance metadata. Temporary credentials are refreshed by
botocore before they expire; that refresh is a synchronous call made at most every few minutes,
on the request that finds them due.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import UpstreamError

SERVICE = "bedrock"


def botocore_missing() -> str | None:
    """Why Bedrock cannot be used here, or None."""
    try:
        import botocore  # noqa: F401
    except ImportError:
        return "provider 'bedrock' needs botocore: pip install 'llm-gateway[bedrock]'"
    return None


class Signer:
    """One botocore session per profile, kept for the process; signs with whatever it resolves."""

    def __init__(self) -> None:
        self._credentials: dict[str | None, Any] = {}

    def credentials(self, profile: str | None) -> Any:
        if profile not in self._credentials:
            from botocore.session import Session

            self._credentials[profile] = Session(profile=profile).get_credentials()
        found = self._credentials[profile]
        if found is None:
            self._credentials.pop(profile)  # looked up again next time: they may appear
            raise UpstreamError("no AWS credentials found for Bedrock (environment, shared config, web identity, "
                                "instance role); tell the gateway's operator", status=502, type="server_error",
                                code="upstream_auth_failed")
        return found.get_frozen_credentials()

    def sign(self, url: str, body: bytes, headers: dict[str, str], region: str, profile: str | None) -> dict[str, str]:
        """`headers` plus the SigV4 ones (Authorization, X-Amz-Date, X-Amz-Security-Token)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(self.credentials(profile), SERVICE, region).add_auth(request)
        return dict(request.headers.items())
