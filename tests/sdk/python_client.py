"""Drives the official Python SDK (sentry-sdk) against a running scrubgate.

Usage: python_client.py DSN gzip|br

Sends an error with PHI in its message and locals, a message and a transaction, then
flushes. The Rust test around it checks what reached the upstream.
"""

import sys

import sentry_sdk


def checkout(order_id):
    # Built at run time so that the values appear only in captured locals, not in the
    # source lines the SDK also sends (pre_context/context_line).
    patient_email = "pat.planted" + "@example.org"  # noqa: F841 (a local the SDK captures)
    password = "py-planted-" + "password"  # noqa: F841
    raise ValueError("card declined for order %s" % order_id)


def main():
    dsn, algo = sys.argv[1], sys.argv[2]
    sentry_sdk.init(
        dsn=dsn,
        release="pyshop@2.0.0",
        environment="ci",
        traces_sample_rate=1.0,
        _experiments={"transport_compression_algo": algo},
    )
    sentry_sdk.set_tag("compression", algo)
    sentry_sdk.set_extra("api_token", "py-planted-" + "token")
    try:
        checkout(77)
    except ValueError:
        sentry_sdk.capture_exception()
    sentry_sdk.capture_message("inventory low (%s)" % algo, level="warning")
    with sentry_sdk.start_transaction(name="GET /orders/%s" % algo, op="http.server"):
        with sentry_sdk.start_span(op="db", description="SELECT 1"):
            pass
    sentry_sdk.flush(timeout=10)


if __name__ == "__main__":
    main()
