//! Placeholders mapped to columns, and parameters redacted by their column wherever they
//! travel next to their statement.

use serde_json::json;

use super::{bindings, Bound, Slot};
use crate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};

fn b(sql: &str) -> Vec<(Slot, &'static str)> {
    let got = bindings(sql);
    got.bound
        .into_iter()
        .map(|Bound { slot, column }| (slot, &*Box::leak(column.into_boxed_str())))
        .collect()
}

fn pos(n: usize) -> Slot {
    Slot::Pos(n)
}

fn named(n: &str) -> Slot {
    Slot::Named(n.to_owned())
}

#[test]
fn insert_column_lists_map_each_placeholder() {
    assert_eq!(
        b("INSERT INTO patients (name, ssn, dob) VALUES (%s, %s, %s)"),
        [(pos(0), "name"), (pos(1), "ssn"), (pos(2), "dob")]
    );
    assert_eq!(
        b("insert into \"public\".\"t\" (\"a\", `ssn`) values ($2, $1)"),
        [(pos(1), "a"), (pos(0), "ssn")]
    );
    // Several rows; an expression is not a lone placeholder.
    assert_eq!(
        b("INSERT INTO t (a, ssn) VALUES (?, ?), (lower(?), ?)"),
        [(pos(0), "a"), (pos(1), "ssn"), (pos(3), "ssn")]
    );
    assert_eq!(
        b("INSERT INTO t (email, n) VALUES (:email, 1) ON CONFLICT (id) DO UPDATE SET email = :email2"),
        [(named("email"), "email"), (named("email2"), "email")]
    );
    assert_eq!(
        bindings("INSERT INTO t (email, n) VALUES (:email, 1)").tables,
        ["t"]
    );
}

#[test]
fn comparisons_map_the_placeholder_to_the_column() {
    assert_eq!(
        b("UPDATE users SET email = %(email)s, phone=%(p)s WHERE id = %(id)s"),
        [
            (named("email"), "email"),
            (named("p"), "phone"),
            (named("id"), "id")
        ]
    );
    assert_eq!(
        b("SELECT * FROM p WHERE lower(p.email) LIKE ? AND mrn IN (?, ?) AND dob BETWEEN ? AND ? AND age > ? LIMIT ?"),
        [
            (pos(0), "email"),
            (pos(1), "mrn"),
            (pos(2), "mrn"),
            (pos(3), "dob"),
            (pos(4), "dob"),
            (pos(5), "age"),
        ]
    );
    assert_eq!(
        b("SELECT 1 FROM t WHERE ssn = ANY($1) AND x::text = :1 AND y NOT IN (@a)"),
        [(pos(0), "ssn"), (named("a"), "y")]
    );
    // Placeholders inside literals and comments are not placeholders.
    assert_eq!(
        b("SELECT '?' FROM t /* ssn = ? */ WHERE email = ? -- and x = ?"),
        [(pos(0), "email")]
    );
}

fn scrubber() -> Scrubber {
    Scrubber::compile(
        &ScrubSettings::default(),
        HashKey {
            id: "k1".into(),
            secret: b"sql-params-test-key-01".to_vec(),
        },
    )
    .expect("compiles")
}

fn lines(report: &crate::scrub::ScrubReport) -> Vec<String> {
    report
        .redactions
        .iter()
        .map(|r| format!("{} {} {}", r.path, r.rule, r.count))
        .collect()
}

#[test]
fn frame_variables_next_to_the_statement() {
    let mut v = json!({"exception": {"values": [{"type": "E", "value": "boom",
    "stacktrace": {"frames": [
        {"function": "execute", "vars": {
            "sql": "'INSERT INTO patients (name, ssn, dob, status) VALUES (%s, %s, %s, %s)'",
            "params": ["'Jxq Vrb'", "'536-22-8471'", "'1975-06-08'", "'active'"]}},
        {"function": "execute", "vars": {
            "query": "'UPDATE users SET email = $2 WHERE id = $1'",
            "args": "(42, 'jxq')"}}
    ]}}]}});
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    let frames = &v["exception"]["values"][0]["stacktrace"]["frames"];
    assert_eq!(
        frames[0]["vars"]["params"],
        json!(["[name]", "[ssn]", "[dob]", "'active'"])
    );
    assert_eq!(
        frames[0]["vars"]["sql"],
        "'INSERT INTO patients (name, ssn, dob, status) VALUES (%s, %s, %s, %s)'"
    );
    assert_eq!(frames[1]["vars"]["args"], "(42, '[email]')");
    assert_eq!(
        frames[1]["vars"]["query"],
        "'UPDATE users SET email = $2 WHERE id = $1'"
    );
    let p = "exception.values.0.stacktrace.frames";
    assert_eq!(
        lines(&report),
        [
            format!("{p}.0.vars.params.0 key_name 1"),
            format!("{p}.0.vars.params.1 key_ssn 1"),
            format!("{p}.0.vars.params.2 key_dob 1"),
            format!("{p}.1.vars.args key_email 1"),
        ]
    );
}

#[test]
fn span_and_breadcrumb_data() {
    let mut v = json!({"type": "transaction", "spans": [
        {"op": "db", "span_id": "a", "description": "SELECT id FROM members WHERE member_id = :mid AND name = :nm",
         "data": {"db.params": {"mid": "XJ123", "nm": "Jxq"}}},
        {"op": "db", "span_id": "b", "description": "INSERT INTO t (a, ssn) VALUES (?, ?)",
         "data": {"db.params": [["x", "111-22-3333"], ["y", "2"]], "db.executemany": true}},
        {"op": "db", "span_id": "c", "description": "select * from accounts where iban = ?",
         "data": {"db.query.parameter.0": "DE00123"}}],
      "breadcrumbs": {"values": [{"category": "query",
        "message": "SELECT * FROM users WHERE lower(email) = %s AND age > %s",
        "data": {"db.params": ["jxq", 40], "db.paramstyle": "format"}}]}});
    let report = scrubber().scrub_value(PayloadKind::Transaction, &mut v);
    // `name` next to a PHI column is a person's name, as in a JSON object.
    assert_eq!(
        v["spans"][0]["data"]["db.params"],
        json!({"mid": "[member-id]", "nm": "[name]"})
    );
    assert_eq!(
        v["spans"][1]["data"]["db.params"],
        json!([["x", "[ssn]"], ["y", "[ssn]"]])
    );
    assert_eq!(v["spans"][2]["data"]["db.query.parameter.0"], "[account]");
    assert_eq!(
        v["breadcrumbs"]["values"][0]["data"]["db.params"],
        json!(["[email]", 40])
    );
    assert_eq!(
        lines(&report),
        [
            "spans.0.data.db.params.mid key_insurance 1",
            "spans.0.data.db.params.nm key_name 1",
            "spans.1.data.db.params.0.1 key_ssn 1",
            "spans.1.data.db.params.1.1 key_ssn 1",
            "spans.2.data.db.query.parameter.0 key_account 1",
            "breadcrumbs.values.0.data.db.params.0 key_email 1",
        ]
    );
}

#[test]
fn span_v2_typed_attributes() {
    let mut v = json!({"items": [{"trace_id": "t", "span_id": "s", "name": "db",
        "attributes": {
            "sentry.op": {"value": "db", "type": "string"},
            "db.query.text": {"value": "SELECT * FROM patients WHERE name = $1 AND dob = $2", "type": "string"},
            "db.query.parameter.0": {"value": "Jxq Vrb", "type": "string"},
            "db.query.parameter.1": {"value": "1975-06-08", "type": "string"}}}]});
    let report = scrubber().scrub_value(PayloadKind::SpanContainer, &mut v);
    let attrs = &v["items"][0]["attributes"];
    assert_eq!(attrs["db.query.parameter.0"]["value"], "[name]");
    assert_eq!(attrs["db.query.parameter.1"]["value"], "[dob]");
    assert_eq!(
        lines(&report),
        [
            "items.0.attributes.db.query.parameter.0.value key_name 1",
            "items.0.attributes.db.query.parameter.1.value key_dob 1",
        ]
    );
}

#[test]
fn parameters_of_harmless_columns_are_left_alone() {
    let mut v = json!({"extra": {"sql": "SELECT * FROM orders WHERE id = %s AND status = %s",
                                 "params": ["1234", "'paid'"]}});
    let before = v.clone();
    assert!(scrubber()
        .scrub_value(PayloadKind::Event, &mut v)
        .is_empty());
    assert_eq!(v, before);
}

/// A long `IN` list and its parameters are read in about linear time.
#[test]
fn long_placeholder_lists_stay_linear() {
    let n = 20_000;
    let sql = format!(
        "SELECT * FROM t WHERE ssn IN ({}) AND mrn = :m",
        vec!["?"; n].join(", ")
    );
    let got = bindings(&sql);
    assert_eq!(got.bound.len(), n + 1);
    assert_eq!(
        got.bound.get(n - 1),
        Some(&Bound {
            slot: pos(n - 1),
            column: "ssn".into()
        })
    );
    let params: Vec<String> = (0..n).map(|i| format!("{i:09}")).collect();
    let mut v = json!({"extra": {"sql": sql, "params": params}});
    let started = std::time::Instant::now();
    let report = scrubber().scrub_value(PayloadKind::Event, &mut v);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(report.total(), n as u64);
    assert_eq!(v["extra"]["params"][n - 1], "[ssn]");
}

/// Scrubbing replaces literals with `?`; read again, those must not count as placeholders,
/// or every parameter after one would be bound to the column before it.
#[test]
fn scrubbed_literals_do_not_shift_the_parameters() {
    // With `%s` in the statement, a bare `?` is no placeholder.
    assert_eq!(
        b("UPDATE t SET note = ? WHERE ssn = %s AND dob = %s"),
        [(pos(0), "ssn"), (pos(1), "dob")]
    );
    assert_eq!(
        bindings("SELECT 1 FROM t WHERE a = ? AND b = %s").positional,
        1
    );
    // A parameter list of another length than the statement takes is not bound by position.
    let mut v = json!({"extra": {
        "ok": {"sql": "SELECT * FROM t WHERE ssn = ?", "params": ["536-22-8471"]},
        "shifted": {"sql": "SELECT * FROM t WHERE ssn = ? AND status = ?", "params": ["active"]},
        "repr": {"sql": "SELECT * FROM t WHERE ssn = ? AND status = ?", "params": "('active',)"},
        "one": {"sql": "SELECT * FROM t WHERE mrn = ?", "params": "('A1',)"}}});
    scrubber().scrub_value(PayloadKind::Event, &mut v);
    assert_eq!(v["extra"]["ok"]["params"], json!(["[ssn]"]));
    assert_eq!(v["extra"]["shifted"]["params"], json!(["active"]));
    assert_eq!(v["extra"]["repr"]["params"], "('active',)");
    assert_eq!(v["extra"]["one"]["params"], "('[mrn]',)");
    // The fuzz finding: the second pass over a scrubbed statement changes nothing.
    let mut once = json!({"vars": {
        "sql": "'UPDATE patients SET zip = 62704, note = 7 WHERE ssn = %s AND dob = %s'",
        "params": ["'Jxq'", "'1975-06-08'"]}});
    scrubber().scrub_value(PayloadKind::Event, &mut once);
    let mut twice = once.clone();
    assert!(scrubber()
        .scrub_value(PayloadKind::Event, &mut twice)
        .is_empty());
    assert_eq!(twice, once);
}
