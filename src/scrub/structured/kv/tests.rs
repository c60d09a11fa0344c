//! Keys inside text, percent-encoded text and request targets: exact outputs through the
//! whole engine, the rules each redaction was reported under, and decoys that survive.

use serde_json::json;

use crate::scrub::{HashKey, PayloadKind, ScrubSettings, Scrubber};

fn scrubber_with(toml_text: &str) -> Scrubber {
    let settings: ScrubSettings = toml::from_str(toml_text).expect("settings parse");
    Scrubber::compile(
        &settings,
        HashKey {
            id: "k1".into(),
            secret: b"kv-test-key-0123456789".to_vec(),
        },
    )
    .expect("compiles")
}

/// `text` scrubbed as `extra.<key>` of an event: the new text and the rules reported.
fn scrub_as(s: &Scrubber, key: &str, text: &str) -> (String, Vec<String>) {
    let mut v = json!({ "extra": { key: text } });
    let report = s.scrub_value(PayloadKind::Event, &mut v);
    let out = v["extra"][key]
        .as_str()
        .unwrap_or("<not a string>")
        .to_owned();
    let rules = report
        .redactions
        .iter()
        .map(|r| format!("{} {}", r.rule, r.count))
        .collect();
    // Scrubbing the output again changes nothing.
    let mut again = v.clone();
    assert!(
        s.scrub_value(PayloadKind::Event, &mut again).is_empty(),
        "not idempotent: {text:?} -> {out:?} -> {:?}",
        again["extra"][key]
    );
    (out, rules)
}

fn scrub(text: &str) -> (String, Vec<String>) {
    scrub_as(&scrubber_with(""), "note", text)
}

#[track_caller]
fn check(text: &str, expected: &str, rules: &[&str]) {
    let (out, got) = scrub(text);
    assert_eq!(out, expected, "{text:?}");
    assert_eq!(got, rules, "{text:?}");
}

#[track_caller]
fn survives(text: &str) {
    let (out, rules) = scrub(text);
    assert_eq!(out, text);
    assert!(rules.is_empty(), "{text:?}: {rules:?}");
}

#[test]
fn python_reprs_of_dataclasses_namedtuples_dicts_and_rows() {
    check(
        "Patient(mrn='A123', date_of_birth=datetime.date(1975, 6, 8))",
        "Patient(mrn='[mrn]', date_of_birth=[dob])",
        &["key_mrn 1", "key_dob 1"],
    );
    check(
        "Visit(member_id='XJH-88', seen=datetime.datetime(2026, 1, 2, 9, 30), room=12)",
        "Visit(member_id='[member-id]', seen=datetime.datetime(2026, 1, 2, 9, 30), room=12)",
        &["key_insurance 1"],
    );
    check(
        "{'ssn': '536-22-8471', 'name': 'Jxq Vrb', 'plan': 'gold'}",
        "{'ssn': '[ssn]', 'name': '[name]', 'plan': 'gold'}",
        &["ssn 1", "key_name 1"],
    );
    // An ORM row: the plain `name` is a person's because the class names one.
    check(
        "<Customer(id=7, name='Jxq Vrb', zip_code='94107')>",
        "<Customer(id=7, name='[name]', zip_code='[address]')>",
        &["key_name 1", "key_address 1"],
    );
    // Containers of literals under a sensitive key lose every literal.
    check(
        "Chart(allergies=['penicillin', 'latex'], visits=3)",
        "Chart(allergies=['[phi]', '[phi]'], visits=3)",
        &["key_clinical 2"],
    );
    check(
        "User(home_address=Address(street='1 Elm', unit=None), tags=('a',))",
        "User(home_address=[address], tags=('a',))",
        &["key_address 1"],
    );
    check(
        "{'card_number': b'4111'}",
        "{'card_number': b'[card]'}",
        &["key_card 1"],
    );
}

#[test]
fn javascript_inspect_output_and_json_fragments() {
    check(
        "{ name: 'Jxq Vrb', ssn: '536-22-8471', visits: 3 }",
        "{ name: '[name]', ssn: '[ssn]', visits: 3 }",
        &["ssn 1", "key_name 1"],
    );
    check(
        "Patient { mrn: 'A1', nested: { phone: '555-0100' } }",
        "Patient { mrn: '[mrn]', nested: { phone: '[phone]' } }",
        &["key_mrn 1", "key_phone 1"],
    );
    // A JSON fragment cut short (so not parsed as JSON).
    check(
        "body={\"email\": \"jxq@localhost\", \"dob\": \"1975-06-08\", \"no",
        "body={\"email\": \"[email]\", \"dob\": \"[dob]\", \"no",
        &["dob 1", "key_email 1"],
    );
    check(
        "{:zip => '94107', 'policy_number' => 'P-77'}",
        "{:zip => '[address]', 'policy_number' => '[member-id]'}",
        &["key_address 1", "key_insurance 1"],
    );
}

#[test]
fn logfmt_and_key_value_text() {
    check(
        "level=info patient_name=\"Jxq Vrb\" mrn=123 status=200 user_agent=curl/8.0",
        "level=info patient_name=\"[name]\" mrn=[mrn] status=200 user_agent=curl/8.0",
        &["mrn 1", "key_name 1"],
    );
    check(
        "op=login username=jdoe city=Springfield took=12ms",
        "op=login username=[name] city=[address] took=12ms",
        &["key_name 1", "key_address 1"],
    );
    check(
        "record saved, ssn: 536228471, zip_code: 94107",
        "record saved, ssn: [ssn], zip_code: [address]",
        &["ssn 1", "key_address 1"],
    );
    check("mrn: 12345678.", "mrn: [mrn].", &["mrn 1"]);
}

#[test]
fn the_config_key_lists_apply() {
    let s = scrubber_with("sensitive_keys = [\"employee_code\"]\nsafe_keys = [\"mrn\"]\n");
    assert_eq!(
        scrub_as(&s, "note", "Staff(employee_code='E-1', mrn='A123')").0,
        "Staff(employee_code='[Filtered]', mrn='A123')"
    );
    let s = scrubber_with("[detectors.key_address]\nmethod = \"hash\"\n");
    let (out, rules) = scrub_as(&s, "note", "Row(zip_code='94107')");
    assert!(
        out.starts_with("Row(zip_code='address:k1:") && out.ends_with("')"),
        "{out}"
    );
    assert_eq!(rules, ["key_address 1"]);
}

#[test]
fn a_plain_name_needs_a_person() {
    check(
        "Order(name='Widget', customer=Customer(email='jxq@localhost'))",
        "Order(name='Widget', customer=Customer(email='[email]'))",
        &["key_email 1"],
    );
    survives("Span(name='checkout', op='http')");
    survives("name=checkout op=http.server status=ok");
    // At the top, the JSON key can be the person.
    let (out, _) = scrub_as(
        &scrubber_with(""),
        "customer_repr",
        "name='Jxq Vrb' plan=gold",
    );
    assert_eq!(out, "name='[name]' plan=gold");
}

#[test]
fn code_is_not_data() {
    for line in [
        "password = get_password()",
        "name = self.name",
        "email = user.email",
        "f(email=email, city=city)",
        "connect(username=user, address=addr1)",
        "zip = 0",
        "cardinality = 5",
        "email: str",
        "dob: Optional[date] = None",
        "def create(email: str, phone: 'Optional[str]' = None):",
        "const email = req.body.email",
        "{ email: emailInput.value, phone: phone }",
        "if token == 0x00:",
        "address = os.environ['ADDR']",
        "ssn = row[3]",
        "city=city",
        "email=user_email",
        "email=self.email",
        "x = {'email': email}",
        "phone: '%s', email: '{email}', ssn: 'XXX-XX-XXXX'",
        "email='email'",
        "Expected date_of_birth: YYYY-MM-DD",
        "not an iban: DE00 0000 0000",
        "input#card-holder[name=\"cardholder\"]",
        "zip = zipfile.ZipFile(path)",
        "token = Token(kind, value)",
        "password = os.environ.get('PASSWORD')",
        // Lines of calls split over lines.
        "    address=('0.0.0.0', 1),",
        "    full_name=module_name,",
        "asyncio.DatagramProtocol, remote_addr=('127.0.0.1', 80))",
        "token_generator=lambda item: next_page(item)",
        // A key inside a string literal: its value cannot run past the literal.
        "def unix_getpass(prompt='Password: ', stream=None):",
        "print(\"shlex: token=\" + repr(raw))",
    ] {
        survives(line);
    }
}

#[test]
fn harmless_keys_and_shapes_survive() {
    for line in [
        "status=200 user_agent=curl/8.0 method=GET path=/health took=3ms",
        "Timeout after 30000ms (status 504) on port 5432",
        "retry=3 backoff=1.5 region=us-east-1",
        "x = '%02d:%02d' % (h, m)",
        "100% done",
        "GET /static/app.js?v=3 HTTP/1.1",
        "GET /health HTTP/1.1",
        "a::b = c",
        "https://example.org/a?page=2",
        "email= next=1",
    ] {
        survives(line);
    }
}

#[test]
fn request_lines_in_access_logs() {
    check(
        "203.0.113.9 - - [22/Nov/2026 10:36:02] \"POST /checkout?note=Jane%20Doe%20DOB%201975-06-08&mrn=A77 HTTP/1.1\" 200 -",
        "[ip] - - [22/Nov/2026 10:36:02] \"POST /checkout?note=[name]%20DOB%20[dob]&mrn=[mrn] HTTP/1.1\" 200 -",
        &["ipv4 1", "full_name 1", "dob 1", "key_mrn 1"],
    );
    check(
        "redirect to next=/login?email=jxq%40example.org&x=1 done",
        "redirect to next=/login?email=[email]&x=1 done",
        &["email 1"],
    );
    check(
        "GET /search?first_name=Jxq+Q&page=2 HTTP/1.1",
        "GET /search?first_name=[name]&page=2 HTTP/1.1",
        &["key_name 1"],
    );
}

#[test]
fn percent_encoded_text_is_decoded_scanned_and_encoded_again() {
    check(
        "note%3DJane%20Doe%20DOB%201975-06-08",
        "note%3D[name]%20DOB%20[dob]",
        &["full_name 1", "dob 1"],
    );
    check(
        "see https://x.example/patients/by-address/742%20Evergreen%20Terrace/chart",
        "see https://x.example/patients/by-address/[address]/chart",
        &["address 1"],
    );
    check(
        "cached ssn%3D536-22-8471%26plan%3Dgold",
        "cached ssn%3D[ssn]%26plan%3Dgold",
        // The SSN detector reads encoded text too, and runs first.
        &["ssn 1"],
    );
}

#[test]
fn a_value_must_look_like_its_class() {
    for line in [
        "{'CC': 'clang', 'phone': '\u{260e}', \"city_sunset\": \"\u{1f306}\"}",
        "{\"phone_number\": r\"\\+\\d{,15}\", \"email\": \"ses\"}",
        "{\"Address\": f\"dynamodb.{self.region_name}.amazonaws.com\"}",
        "{'Signature': 'EXAMPLE', 'Cookie': 'http.cookies', 'SESSION_COOKIE_NAME': 'session'}",
        "NameOID.STREET_ADDRESS: \"streetAddress\",",
        "SignatureAlgorithmOID.RSA_WITH_SHA256: \"sha256WithRSAEncryption\",",
    ] {
        survives(line);
    }
    // A password in words, under a key that says password; not a name in code.
    check(
        "Patient { userPassword: 'sunshine-freedom-purple-coffee', id: 7 }",
        "Patient { userPassword: '[Filtered]', id: 7 }",
        &["key_secret 1"],
    );
    survives("{'password_field': 'hashed_password', 'PASSWORD_MODE': 'STRICT'}");
    check(
        "{'session_id': 'f3a9c2e17b4d', 'cvv': '123', 'email': 'jxq@localhost'}",
        "{'session_id': '[Filtered]', 'cvv': '[card]', 'email': '[email]'}",
        &["key_secret 1", "key_card 1", "key_email 1"],
    );
}

#[test]
fn a_dotted_key_is_a_path_to_its_last_part() {
    check(
        "patient.name=Jxq user.email=jxq@localhost order.id=7",
        "patient.name=[name] user.email=[email] order.id=7",
        &["key_name 1", "key_email 1"],
    );
    survives("span.name=checkout service.name=api");
}

/// Text built to make the readers of structure quadratic (every pair looking back over all
/// groups, every name over all siblings, every `/` over the rest of its target) is read in
/// about linear time: 200 KB of each shape in well under the limit even unoptimised.
#[test]
fn hostile_shapes_stay_linear() {
    let n = 20_000;
    let shapes = [
        "(".repeat(n * 5) + "ssn='536-22-8471'",
        format!("Patient({})", "name='Jxq', ".repeat(n)),
        format!("{{{}}}", "{name: 'Jxq', ssn: '1'}, ".repeat(n / 2)),
        "next=/a?b=".repeat(n),
        "ssn=[".repeat(n),
        format!("{})", "    mrn=A1,\n".repeat(n)),
        "x%41".repeat(n),
        format!("{}(x)", "a.".repeat(n * 4)),
    ];
    let s = scrubber_with("");
    for shape in shapes {
        let started = std::time::Instant::now();
        let mut v = json!({ "extra": { "note": shape } });
        s.scrub_value(PayloadKind::Event, &mut v);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(20),
            "{took:?} for {:?}…",
            shape.get(..40)
        );
    }
}

mod props {
    use proptest::prelude::*;
    use serde_json::json;

    use super::scrubber_with;
    use crate::scrub::PayloadKind;

    /// Pieces of the shapes read here, and of what breaks them.
    fn text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "Patient(",
            "mrn='A123'",
            "name='Jxq Vrb'",
            "ssn=",
            "zip_code",
            "=",
            " = ",
            ": ",
            "=>",
            ":",
            "'",
            "\"",
            "`",
            "b'",
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "\n",
            " ",
            "94107",
            "536-22-8471",
            "jxq@localhost",
            "datetime.date(1975, 6, 8)",
            "1975-06-08",
            "%20",
            "%3D",
            "%26",
            "%",
            "%4",
            "+",
            "&",
            "?",
            "#",
            "/checkout?",
            "/p/",
            "GET ",
            " HTTP/1.1",
            "email=",
            "note=",
            "Jane%20Doe",
            "self.x",
            "lambda",
            "None",
            "[ssn]",
            "[Filtered]",
            "mrn:k1:0123456789abcdef",
            "address:k1:",
            "card_number",
            "4111",
            "Customer { ",
            "level=info ",
            "é",
            "\\",
            "...",
            "//",
            "cvv",
            "session_id=",
        ]);
        prop::collection::vec(pieces, 0..14).prop_map(|p| p.concat())
    }

    /// The default config, hashing, bare labels, `remove` and `mask`: compiled once.
    fn scrubbers() -> &'static [crate::scrub::Scrubber; 4] {
        static SCRUBBERS: std::sync::OnceLock<[crate::scrub::Scrubber; 4]> =
            std::sync::OnceLock::new();
        SCRUBBERS.get_or_init(|| {
            [
                "",
                "[detectors.key_mrn]\nmethod = \"hash\"\n[detectors.key_address]\nmethod = \"hash\"\n",
                "label_format = \"{label}\"\n",
                "[detectors.key_ssn]\nmethod = \"remove\"\n[detectors.key_name]\nmethod = \"mask\"\n",
            ]
            .map(scrubber_with)
        })
    }

    fn settled(s: &crate::scrub::Scrubber, text: &str) -> Result<(), TestCaseError> {
        let mut v = json!({ "extra": { "note": text, "customer": text } });
        let before = v.clone();
        let report = s.scrub_value(PayloadKind::Event, &mut v);
        prop_assert_eq!(
            report.is_empty(),
            v == before,
            "report vs change: {:?}",
            text
        );
        let once = v.clone();
        let again = s.scrub_value(PayloadKind::Event, &mut v);
        prop_assert!(again.is_empty(), "{:?} -> {:?} -> {:?}", text, once, v);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
        #[test]
        fn scrubbing_settles_in_one_scrub(t in text(), config in 0usize..4) {
            settled(&scrubbers()[config], &t)?;
        }
    }
}

/// A repeated string's "nothing here" is remembered only when it does not depend on the
/// JSON key: the same text is a person's record under `customer` and not under `note`,
/// however often it repeats and in whichever order.
#[test]
fn remembered_answers_do_not_depend_on_the_key() {
    let s = scrubber_with("");
    let text = "name='Jxq Vrb' plan=gold";
    for customer_first in [false, true] {
        let mut extra = serde_json::Map::new();
        if customer_first {
            extra.insert("customer".into(), json!(text));
        }
        for i in 0..200 {
            extra.insert(format!("note{i}"), json!(text));
            extra.insert(format!("line{i}"), json!(format!("plain line {}", i % 3)));
        }
        if !customer_first {
            extra.insert("customer".into(), json!(text));
        }
        let mut v = json!({ "extra": extra });
        let report = s.scrub_value(PayloadKind::Event, &mut v);
        assert_eq!(v["extra"]["customer"], "name='[name]' plan=gold");
        assert_eq!(v["extra"]["note7"], text);
        assert_eq!(v["extra"]["note199"], text);
        assert_eq!(report.total(), 1, "customer first: {customer_first}");
    }
}
