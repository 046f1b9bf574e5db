"""The one error tree of circleci-events.

    CircleCIEventsError            code: a machine reason, also the HTTP `error_code` and a metric label
    ├── ConfigurationError         a setting or the routes file is wrong; the process must not start
    ├── RedisUnavailable           Redis did not answer; the webhook gets 503 so CircleCI retries
    │   └── RedisNotReplicated     fewer replicas than REDIS_WAIT_REPLICAS confirmed the write: 503
    ├── EventUndecodable           a queued job or its payload cannot be read: dead-lettered, never retried
    │   └── JobRefused             a job naming a function that is not one of ours: never imported, never run
    ├── LogTailUnavailable         a failed step's output could not be had or read: the event goes on
    │                              without the tail, the message saying why; never retried
    ├── WebhookError               a request we refuse; carries the HTTP status we answer with
    │   ├── HeadersTooLarge        431: request line and headers over WEB_MAX_HEADER_BYTES (then closed)
    │   ├── HeaderTimeout          408: headers not complete within WEB_HEADER_TIMEOUT_SECONDS (then closed)
    │   ├── BodyTooLarge           413
    │   ├── BodyIncomplete         400: the client hung up before the whole body arrived
    │   ├── BodyTimeout            408: the body not complete within WEB_BODY_TIMEOUT_SECONDS
    │   ├── UnsupportedMediaType   415
    │   ├── SignatureError         401
    │   ├── InvalidJSON            400
    │   ├── PayloadInvalid         422
    │   ├── SlackTeamRefused       403: a Slack click from a workspace other than SLACK_TEAM_ID
    │   ├── TooManyConnections     429: one address over WEB_MAX_CLIENT_CONNECTIONS or _INCOMPLETE (then closed)
    │   └── RateLimited            429, with retry_after
    ├── CircleCIAPIError           an API v2 call failed; carries status, method and path (keyword-only)
    │   ├── CircleCIUnauthorized   401: a bad token, or a project token (v2 takes personal tokens only)
    │   ├── CircleCIForbidden      403
    │   ├── CircleCINotFound       404 (also an invalid token on a private project)
    │   ├── CircleCIBadRequest     any other 4xx
    │   ├── CircleCIRateLimited    429, with retry_after (seconds, or None when unknown)
    │   ├── CircleCIServerError    5xx
    │   ├── CircleCITimeout        no answer in time (status None)
    │   ├── CircleCIUnreachable    connection or protocol failure (status None)
    │   ├── CircleCIInvalidResponse  a 2xx whose body is not the JSON we expect
    │   ├── CircleCIPaginationError  a page token repeats, or the page cap is reached
    │   ├── CircleCIRedirectRefused  a download redirects too often, or to no http(s) URL
    │   ├── CircleCIPathInvalid      an id, name or slug that cannot be a path segment; nothing sent
    │   └── CircleCIJobNumberMissing a job endpoint called without a job number (approval jobs)
    └── HandlerError               a notification could not be delivered
        ├── DeliveryRetryable      429, 408, 5xx, timeouts: try again later
        └── DeliveryRejected       other 4xx: a configuration error, not retried

Subclasses for the API client and the handlers live next to them but derive from these.
"""

from __future__ import annotations

from typing import Any


class CircleCIEventsError(Exception):
    """Root of every error this project raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ConfigurationError(CircleCIEventsError):
    code = "configuration_invalid"


class RedisUnavailable(CircleCIEventsError):
    code = "redis_unavailable"
    http_status = 503


class RedisNotReplicated(RedisUnavailable):
    code = "redis_not_replicated"


class EventUndecodable(CircleCIEventsError):
    """A job's data or its webhook payload cannot be read; retrying would fail the same way."""

    code = "event_undecodable"


class LogTailUnavailable(CircleCIEventsError):
    """A failed step's output could not be had or read (its message says why, in a few words)."""

    code = "log_tail_unavailable"


class JobRefused(EventUndecodable):
    """A job names a function that is not one of the product's jobs (written into Redis by someone else)."""

    code = "job_refused"


class WebhookError(CircleCIEventsError):
    http_status = 400


class HeadersTooLarge(WebhookError):
    code = "headers_too_large"
    http_status = 431


class HeaderTimeout(WebhookError):
    code = "header_timeout"
    http_status = 408


class BodyTooLarge(WebhookError):
    code = "body_too_large"
    http_status = 413


class BodyIncomplete(WebhookError):
    code = "body_incomplete"
    http_status = 400


class BodyTimeout(WebhookError):
    code = "body_timeout"
    http_status = 408


class UnsupportedMediaType(WebhookError):
    code = "unsupported_media_type"
    http_status = 415


class SignatureError(WebhookError):
    code = "signature_invalid"
    http_status = 401


class InvalidJSON(WebhookError):
    code = "invalid_json"
    http_status = 400


class PayloadInvalid(WebhookError):
    code = "payload_invalid"
    http_status = 422


class SlackTeamRefused(WebhookError):
    code = "slack_team_refused"
    http_status = 403


class TooManyConnections(WebhookError):
    """One address holds more connections, or more unfinished requests, than WEB_MAX_CLIENT_* allow."""

    code = "too_many_connections"
    http_status = 429


class RateLimited(WebhookError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class CircleCIAPIError(CircleCIEventsError):
    """An API v2 call failed. `status` is None when no HTTP answer arrived."""

    code = "circleci_api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.method = method
        self.path = path


class HandlerError(CircleCIEventsError):
    """A destination did not take a notification. Carries what the delivery job needs to decide."""

    code = "handler_failed"
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        handler: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        body_excerpt: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.handler = handler
        self.status = status
        self.retry_after = retry_after
        self.body_excerpt = body_excerpt


class DeliveryRetryable(HandlerError):
    """429, 408, 5xx, timeouts, connection errors: try again later (429 after Retry-After)."""

    code = "delivery_retryable"


class DeliveryRejected(HandlerError):
    """Any other 4xx: the destination refuses this request; retrying will not help."""

    code = "delivery_rejected"
    retryable = False


class CircleCIUnauthorized(CircleCIAPIError):
    code = "circleci_unauthorized"


class CircleCIForbidden(CircleCIAPIError):
    code = "circleci_forbidden"


class CircleCINotFound(CircleCIAPIError):
    code = "circleci_not_found"


class CircleCIBadRequest(CircleCIAPIError):
    code = "circleci_bad_request"


class CircleCIRateLimited(CircleCIAPIError):
    """429. `retry_after` is the wait in seconds CircleCI asked for, or None when it said nothing."""

    code = "circleci_rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        method: str = "",
        path: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            method=method,
            path=path,
            details={**(details or {}), "retry_after": retry_after},
        )
        self.retry_after = retry_after


class CircleCIServerError(CircleCIAPIError):
    code = "circleci_server_error"


class CircleCITimeout(CircleCIAPIError):
    code = "circleci_timeout"


class CircleCIUnreachable(CircleCIAPIError):
    code = "circleci_unreachable"


class CircleCIInvalidResponse(CircleCIAPIError):
    code = "circleci_invalid_response"


class CircleCIPaginationError(CircleCIAPIError):
    code = "circleci_pagination_error"


class CircleCIRedirectRefused(CircleCIAPIError):
    code = "circleci_redirect_refused"


class CircleCIPathInvalid(CircleCIAPIError):
    code = "circleci_path_invalid"


class CircleCIJobNumberMissing(CircleCIAPIError):
    code = "circleci_job_number_missing"
