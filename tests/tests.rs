//! Integration tests: the real server on 127.0.0.1 with an ephemeral port, a real in-test
//! upstream, real SDK clients.

mod pg_util;
mod util;

mod admin;
mod audit_postgres;
mod audit_trail;
mod auth_routing;
mod binary;
mod candidate;
mod closed;
mod decoding;
mod delivery;
mod delivery_destinations;
mod endpoints;
mod faults;
mod first_run;
mod fuzz_regressions;
mod hostile;
mod leak;
mod limits;
mod policy;
mod privacy;
mod sdk_browser;
mod sdk_node;
mod sdk_python;
mod sdk_rust;
mod spool_damage;
mod tls;
