//! The built-in rule sets: `hipaa` (PHI/PII and secrets, the default) and `secrets-only`
//! (roughly what the Sentry SDKs' own default denylist does, matched on whole words).
//!
//! Entries use the key syntax of [`super::keys`]: words are matched on normalised keys,
//! `*` is a glob, and a leading `=` means "the whole key, nothing else".

use super::keys::KeyClass;

/// Secrets: in both profiles.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "client_secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "proxy_authorization",
    "bearer",
    "jwt",
    "cookie",
    "cookies",
    "set_cookie",
    "=session",
    "session_id",
    "session_key",
    "session_token",
    "session_secret",
    "session_cookie",
    "sessionid",
    "sessid",
    "phpsessid",
    "jsessionid",
    "csrf",
    "xsrf",
    "csrftoken",
    "credentials",
    "credential",
    "private_key",
    "privatekey",
    "secret_key",
    "access_key",
    "signature",
    "sso",
    "saml",
    "otp",
    "=pin",
];

/// Cookie names that are session handles even though the word is too short for keys.
pub(crate) const SECRET_COOKIE_NAMES: &[&str] = &["sid", "connect.sid", "remember_me"];

/// PHI and PII keys of the `hipaa` profile, by class.
pub(crate) const HIPAA_KEYS: &[(KeyClass, &[&str])] = &[
    (
        KeyClass::Name,
        &[
            "first_name",
            "firstname",
            "last_name",
            "lastname",
            "full_name",
            "fullname",
            "middle_name",
            "maiden_name",
            "given_name",
            "family_name",
            "surname",
            "patient_name",
            "customer_name",
            "contact_name",
            "cardholder",
            "cardholder_name",
            "card_holder",
            "username",
            "user_name",
            "nickname",
            "guardian",
            "next_of_kin",
            "emergency_contact",
            "signature_name",
        ],
    ),
    (
        KeyClass::Email,
        &["email", "e_mail", "email_address", "contact_email", "=mail"],
    ),
    (
        KeyClass::Phone,
        &[
            "phone",
            "phone_number",
            "telephone",
            "=tel",
            "mobile",
            "mobile_number",
            "cell_phone",
            "fax",
            "msisdn",
        ],
    ),
    (
        KeyClass::Ssn,
        &[
            "ssn",
            "social_security",
            "social_security_number",
            "tax_id",
            "=tin",
            "national_id",
            "passport",
            "passport_number",
            "drivers_license",
            "driver_license",
            "license_number",
        ],
    ),
    (
        KeyClass::Dob,
        &[
            "dob",
            "date_of_birth",
            "birth_date",
            "birthdate",
            "birthday",
            "birth_day",
        ],
    ),
    (
        KeyClass::Address,
        &[
            "=address",
            "home_address",
            "street_address",
            "mailing_address",
            "billing_address",
            "shipping_address",
            "postal_address",
            "address_line",
            "address1",
            "address2",
            "address_line1",
            "address_line2",
            "street",
            "city",
            "zip",
            "zipcode",
            "zip_code",
            "postal_code",
            "postalcode",
            "postcode",
            "latitude",
            "longitude",
        ],
    ),
    (
        KeyClass::Mrn,
        &[
            "mrn",
            "medical_record",
            "medical_record_number",
            "patient_id",
            "chart_number",
            "health_record",
        ],
    ),
    (
        KeyClass::Insurance,
        &[
            "insurance*",
            "member_id",
            "memberid",
            "member_number",
            "subscriber_id",
            "policy_number",
            "policy_no",
            "group_number",
            "beneficiary",
            "beneficiary_id",
            "medicaid*",
            "medicare*",
            "health_plan",
        ],
    ),
    (
        KeyClass::Account,
        &[
            "account_number",
            "account_no",
            "acct",
            "acct_no",
            "iban",
            "routing_number",
            "bank_account",
        ],
    ),
    (
        KeyClass::Card,
        &[
            "card*",
            "credit_card",
            "creditcard",
            "cc",
            "ccn",
            "cvv",
            "cvc",
            "cvv2",
            "csc",
        ],
    ),
    (
        KeyClass::Clinical,
        &[
            "patient*",
            "diagnosis",
            "diagnoses",
            "icd*",
            "medication*",
            "prescription*",
            "allergy",
            "allergies",
            "treatment",
            "symptoms",
            "clinical*",
            "lab_result*",
            "procedure_code",
        ],
    ),
    (KeyClass::Npi, &["npi"]),
    (KeyClass::Dea, &["dea", "dea_number"]),
    (
        KeyClass::Ip,
        &[
            "ip_address",
            "=ip",
            "client_ip",
            "remote_addr",
            "forwarded_for",
            "real_ip",
            "true_client_ip",
            "connecting_ip",
        ],
    ),
];

/// Words that make a plain `name` key a person's name when they name the enclosing object.
pub(crate) const PERSON_CONTEXT_WORDS: &[&str] = &[
    "user",
    "users",
    "patient",
    "patients",
    "customer",
    "customers",
    "person",
    "people",
    "contact",
    "member",
    "subscriber",
    "guardian",
    "employee",
    "doctor",
    "physician",
    "nurse",
    "owner",
    "holder",
    "cardholder",
    "recipient",
    "sender",
    "payer",
    "insured",
    "beneficiary",
    "feedback",
    "author",
    "reporter",
    "caller",
    "client",
    "account",
    "profile",
    "billing",
    "shipping",
    "payment",
];

/// Request headers that carry the end user's IP: removed whole.
pub(crate) const IP_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-sentry-forwarded-for",
    "x-vercel-forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "fastly-client-ip",
    "forwarded",
    "x-original-forwarded-for",
];

/// What a schema field's value must look like to be left unscanned ([`SCHEMA_FIELDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Anything: SDK and build metadata the application configures, not data it handles.
    Any,
    /// An id: at least 16 hex digits, with or without dashes (UUIDs, trace and span ids,
    /// debug ids), or `0x` and hex digits (instruction addresses).
    Id,
    /// A time: an RFC 3339 date-time or a unix time, as a string or a number.
    Time,
}

/// The only fields whose values are never scanned, matched on the raw key wherever it
/// occurs: Sentry's ids and times (while the value has that shape: `trace_id` holding
/// anything else is scanned like any string) and the SDK and build metadata. Everything
/// else is scanned, enums and code locations included: the key alone cannot tell
/// `exception.type` from a local variable called `type`, and a check-in's `monitor_slug`
/// is named by the application (`patient-536-22-8471-sync`). Keys ending in `version`
/// are metadata too (see the generic walk). `docs/scrubbing.md` lists them.
pub(crate) const SCHEMA_FIELDS: &[(&str, Shape)] = &[
    ("event_id", Shape::Id),
    ("trace_id", Shape::Id),
    ("span_id", Shape::Id),
    ("parent_span_id", Shape::Id),
    ("segment_id", Shape::Id),
    ("profile_id", Shape::Id),
    ("profiler_id", Shape::Id),
    ("replay_id", Shape::Id),
    ("check_in_id", Shape::Id),
    ("associated_event_id", Shape::Id),
    ("chunk_id", Shape::Id),
    ("sid", Shape::Id),
    ("debug_id", Shape::Id),
    ("code_id", Shape::Id),
    ("instruction_addr", Shape::Id),
    ("image_addr", Shape::Id),
    ("symbol_addr", Shape::Id),
    ("public_key", Shape::Id),
    ("sentry.segment.id", Shape::Id),
    ("timestamp", Shape::Time),
    ("start_timestamp", Shape::Time),
    ("end_timestamp", Shape::Time),
    ("received", Shape::Time),
    ("sent_at", Shape::Time),
    ("started", Shape::Time),
    ("release", Shape::Any),
    ("dist", Shape::Any),
    ("environment", Shape::Any),
    ("sdk", Shape::Any),
    ("modules", Shape::Any),
    ("integrations", Shape::Any),
    ("sentry.release", Shape::Any),
    ("sentry.environment", Shape::Any),
    ("sentry.sdk.name", Shape::Any),
    ("sentry.sdk.integrations", Shape::Any),
];

impl Shape {
    /// Whether `value` has this shape (`value` is a JSON string's content or a number).
    pub(crate) fn fits(self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Id => {
                // An address is `0x` and any number of hex digits; any other id has at
                // least the 16 of a span id, so `536-22-8471` under `trace_id` is scanned.
                let (hex, min) = match value
                    .strip_prefix("0x")
                    .or_else(|| value.strip_prefix("0X"))
                {
                    Some(hex) => (hex, 1),
                    None => (value, 16),
                };
                hex.len() <= 128
                    && hex.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
                    && hex.bytes().filter(u8::is_ascii_hexdigit).count() >= min
            }
            Self::Time => {
                !value.is_empty()
                    && value.len() <= 40
                    && value.bytes().all(|b| {
                        b.is_ascii_digit()
                            || matches!(
                                b,
                                b'-' | b':' | b'.' | b'+' | b'T' | b'Z' | b't' | b'z' | b' '
                            )
                    })
            }
        }
    }
}

/// Keys SDKs send in almost every payload (protocol fields, context fields, common headers
/// and OpenTelemetry-style attributes). Their meaning is worked out once when the
/// configuration is compiled, so a small event does not pay for classifying the same
/// keys again on every call. Purely a cache: any key not listed is classified the same
/// way on first sight.
pub(crate) const COMMON_KEYS: &[&str] = &[
    "message",
    "logentry",
    "formatted",
    "params",
    "exception",
    "values",
    "value",
    "stacktrace",
    "frames",
    "filename",
    "abs_path",
    "context_line",
    "pre_context",
    "post_context",
    "vars",
    "mechanism",
    "handled",
    "synthetic",
    "data",
    "breadcrumbs",
    "category",
    "user",
    "id",
    "email",
    "username",
    "ip_address",
    "name",
    "geo",
    "request",
    "url",
    "method",
    "query_string",
    "headers",
    "cookies",
    "env",
    "body",
    "extra",
    "tags",
    "contexts",
    "server_name",
    "transaction",
    "transaction_info",
    "source",
    "threads",
    "debug_meta",
    "images",
    "spans",
    "description",
    "trace",
    "runtime",
    "os",
    "device",
    "app",
    "browser",
    "culture",
    "locale",
    "timezone",
    "build",
    "kernel_version",
    "arch",
    "family",
    "model",
    "memory_size",
    "free_memory",
    "boot_time",
    "processor_count",
    "cpu_description",
    "processor_frequency",
    "app_start_time",
    "app_memory",
    "cloud_resource",
    "status_code",
    "packages",
    "attributes",
    "items",
    "item_count",
    "length",
    "content_type",
    "arguments",
    "sys.argv",
    "client_sdk",
    "current",
    "crashed",
    "main",
    "state",
    "registers",
    "did",
    "sid",
    "attrs",
    "user_agent",
    "errors",
    "aggregates",
    "exited",
    "abnormal",
    "comments",
    "contact_email",
    "associated_event_id",
    "replay_type",
    "urls",
    "error_ids",
    "trace_ids",
    "segment_id",
    "replay_start_timestamp",
    "profile",
    "samples",
    "stacks",
    "thread_metadata",
    "thread_id",
    "elapsed_since_start_ns",
    "stack_id",
    "chunk_id",
    "discarded_events",
    "reason",
    "quantity",
    "width",
    "height",
    "unit",
    "key",
    "http.request.method",
    "http.response.status_code",
    "http.response.status_text",
    "url.full",
    "url.path",
    "url.scheme",
    "url.query",
    "url.port",
    "url.domain",
    "server.address",
    "client.address",
    "network.protocol.name",
    "network.protocol.version",
    "network.transport",
    "network.local.address",
    "network.local.port",
    "network.peer.address",
    "network.peer.port",
    "thread.id",
    "thread.name",
    "db.system",
    "db.system.name",
    "db.statement",
    "db.query.text",
    "db.operation",
    "db.name",
    "user.id",
    "user.email",
    "user.name",
    "user.ip_address",
    "sentry.message.template",
    "sentry.message.parameter.0",
    "sentry.message.parameter.1",
    "sentry.segment.name",
    "sentry.segment.name.source",
    "sentry.kind",
    "sentry.is_localhost",
    "sentry.environment",
    "process.runtime.name",
    "process.runtime.version",
    "process.runtime.engine.name",
    "process.runtime.engine.version",
    "os.name",
    "os.version",
    "os.kernel_version",
    "device.archs",
    "device.boot_time",
    "device.memory_size",
    "device.processor_count",
    "device.cpu_description",
    "device.processor_frequency",
    "device.free_memory",
    "app.start_time",
    "app.memory",
    "app.free_memory",
    "culture.locale",
    "culture.timezone",
    "severity_text",
    "trace_id",
    "span_id",
    "Host",
    "host",
    "User-Agent",
    "user-agent",
    "Accept",
    "accept",
    "Accept-Encoding",
    "accept-encoding",
    "Accept-Language",
    "accept-language",
    "Content-Type",
    "content-type",
    "Content-Length",
    "content-length",
    "Connection",
    "connection",
    "Referer",
    "referer",
    "Origin",
    "origin",
    "Cache-Control",
    "cache-control",
    "Cookie",
    "cookie",
    "Authorization",
    "authorization",
    "X-Request-Id",
    "x-request-id",
    "X-Forwarded-Proto",
    "x-forwarded-proto",
    "Upgrade-Insecure-Requests",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Site",
    "Sec-Fetch-Dest",
    "Sec-Ch-Ua",
    "Pragma",
    "Dnt",
    "password",
    "token",
    "secret",
    "api_key",
    "phone",
    "address",
    "ssn",
    "dob",
];

#[cfg(test)]
mod tests {
    use super::{Shape, SCHEMA_FIELDS};

    #[test]
    fn schema_shapes_take_ids_and_times_only() {
        for id in [
            "59aa86fc723645769c6a7eb19ac62cef",
            "aa32e3332d8c5b97",
            "7c373a13-b19e-44ec-8c60-79bbdb7e08ee",
            "0x1a2b",
            "0X00000001000a1b2c",
        ] {
            assert!(Shape::Id.fits(id), "{id}");
        }
        for other in ["536-22-8471", "patient-1", "0x", "", "abc", "0xzz"] {
            assert!(!Shape::Id.fits(other), "{other}");
        }
        for time in [
            "2026-11-22T11:50:03.638Z",
            "1795348108.307",
            "2026-11-22 11:50:03+00:00",
        ] {
            assert!(Shape::Time.fits(time), "{time}");
        }
        for other in ["tomorrow", "", "born 1975-06-08"] {
            assert!(!Shape::Time.fits(other), "{other}");
        }
    }

    /// Enums, code locations and application-named fields are scanned like any string.
    #[test]
    fn only_ids_times_and_sdk_metadata_are_schema_fields() {
        for scanned in [
            "monitor_slug",
            "type",
            "status",
            "op",
            "origin",
            "level",
            "logger",
            "function",
            "module",
            "package",
            "symbol",
            "errors",
            "hash",
            "_meta",
        ] {
            assert!(
                SCHEMA_FIELDS.iter().all(|(k, _)| *k != scanned),
                "{scanned}"
            );
        }
    }
}
