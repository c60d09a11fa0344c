use proptest::prelude::*;
use serde_json::{json, Value};

use super::{
    check_against_serde_json, parse, parse_bytes, same_value, to_string, Node, Object, Text,
    Verdict,
};

fn round_trip(input: &str) -> String {
    to_string(&parse(input).expect("valid JSON"))
}

#[test]
fn untouched_input_is_written_back_byte_identical() {
    for input in [
        r#"{"a":"caf\u00e9","b":"a\/b","c":[1.50,1E5,-0,0.0,1e-7,-12.5e+3],"d":null,"e":true,"f":false}"#,
        r#"["\"\\\b\f\n\r\t","\ud83d\ude00","plain é ☃",{}]"#,
        r#"{"k\u0041y":{"nested":[[],[{}]]},"":""}"#,
        "123456789012345678901234567890",
        r#""just a string""#,
    ] {
        assert_eq!(round_trip(input), input);
    }
}

#[test]
fn whitespace_is_dropped() {
    assert_eq!(
        round_trip(" { \"a\" : [ 1 , 2 ] ,\n\"b\"\t:\r{} } "),
        r#"{"a":[1,2],"b":{}}"#
    );
}

#[test]
fn decoded_values() {
    let node = parse(r#"{"a":"caf\u00e9 \ud83d\ude00 \/ \"q\"","b":"x"}"#).expect("valid");
    assert_eq!(
        node.get("a").and_then(Node::as_str),
        Some("café 😀 / \"q\"")
    );
    assert_eq!(node.get("b").and_then(Node::as_str), Some("x"));
    assert_eq!(
        node.to_value(),
        serde_json::from_str::<Value>(r#"{"a":"caf\u00e9 \ud83d\ude00 \/ \"q\"","b":"x"}"#)
            .expect("valid")
    );
}

#[test]
fn rejected_like_serde_json() {
    for input in [
        "",
        " ",
        "[1,]",
        "{\"a\":1,}",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "// c\n1",
        "/* c */ 1",
        "[1] x",
        "\"a\u{1}b\"",
        "\"a\nb\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"abc",
        "\"abc\\",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "1e400",
        "-1e400",
        "[1e309]",
        "tru",
        "nul",
        "NaN",
        "Infinity",
        "[",
        "{",
        "{\"a\"",
        "{\"a\":",
        "'a'",
    ] {
        assert!(parse(input).is_err(), "accepted {input:?}");
        assert!(
            serde_json::from_str::<Value>(input).is_err(),
            "serde_json accepts {input:?}"
        );
    }
    let huge = format!("[{}]", "9".repeat(400));
    assert!(parse(&huge).is_err());
    assert!(serde_json::from_str::<Value>(&huge).is_err());
    assert!(parse_bytes(b"\"\xff\"").is_err());
}

#[test]
fn accepted_like_serde_json() {
    for input in [
        "1e-400",
        "0e99999",
        "-0",
        "[18446744073709551616]",
        " \"\\u0000\" ",
    ] {
        assert!(parse(input).is_ok(), "rejected {input:?}");
        assert!(serde_json::from_str::<Value>(input).is_ok());
    }
}

#[test]
fn nesting_limit_is_serde_jsons() {
    for depth in [1usize, 100, 127, 128, 129, 100_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        for input in [arrays, objects] {
            assert_eq!(
                parse(&input).is_ok(),
                serde_json::from_str::<Value>(&input).is_ok(),
                "depth {depth}"
            );
        }
    }
    assert!(parse(&"[".repeat(100_000)).is_err());
}

#[test]
fn error_carries_no_input_text() {
    let err = parse("{\"secret\": nope}").expect_err("invalid");
    assert!(!err.to_string().contains("nope"));
    assert_eq!(err.position, 11);
}

#[test]
fn changed_strings_are_escaped_like_serde_json() {
    let values = [
        "plain",
        "q\"uote\\back/slash",
        "\u{0}\u{1}\u{7}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{1f}\u{7f}",
        "é ☃ 😀 \u{2028}",
        "",
    ];
    for v in values {
        let mut node = parse(r#"{"k":"old\u0020"}"#).expect("valid");
        if let Some(Node::Str(t)) = node.as_object_mut().and_then(|o| o.get_mut("k")) {
            t.set(v.to_owned());
        }
        assert_eq!(
            to_string(&node),
            serde_json::to_string(&json!({ "k": v })).expect("serializes")
        );
    }
}

#[test]
fn duplicate_keys_are_kept_and_last_wins() {
    let mut node = parse(r#"{"a":1,"b":2,"a":3}"#).expect("valid");
    assert_eq!(
        round_trip(r#"{"a":1,"b":2,"a":3}"#),
        r#"{"a":1,"b":2,"a":3}"#
    );
    let obj = node.as_object_mut().expect("object");
    assert_eq!(obj.len(), 3);
    assert_eq!(obj.get("a"), Some(&Node::Number("3".into())));
    assert!(obj.contains_key("b"));
    assert_eq!(obj.insert("a", Node::Null), Some(Node::Number("3".into())));
    assert_eq!(to_string(&node), r#"{"a":1,"b":2,"a":null}"#);
    assert_eq!(node.to_value(), json!({"a": null, "b": 2}));
    let obj = node.as_object_mut().expect("object");
    assert_eq!(obj.remove("a"), Some(Node::Null));
    assert_eq!(obj.remove("a"), None);
    obj.insert("c", Node::Bool(true));
    obj.push("c", Node::Bool(false));
    assert_eq!(to_string(&node), r#"{"b":2,"c":true,"c":false}"#);
}

#[test]
fn object_helpers() {
    let mut obj = Object::new();
    assert!(obj.is_empty());
    obj.push(Text::new("x"), Node::string("1"));
    obj.push("y", Node::string("2"));
    obj.push("z", Node::string("3"));
    obj.retain(|k, _| k.as_str() != "y");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["x", "z"]);
    for (_, v) in obj.iter_mut() {
        *v = Node::Null;
    }
    obj.remove_indices(&[0]);
    assert_eq!(to_string(&Node::Object(obj)), r#"{"z":null}"#);
}

#[test]
fn conversions() {
    let v = json!({"a": [1, -2.5, 1e300, "q\"\\\u{1}é", null, true], "b": {}, "c": u64::MAX});
    let node = Node::from_value(&v);
    assert_eq!(node.to_value(), v);
    assert_eq!(
        to_string(&node),
        serde_json::to_string(&v).expect("serializes")
    );
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z\"\\\\/\u{0}-\u{1f}é😀]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"\u{1}é]{0,4}", inner), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn agrees_with_serde_json(v in arb_value()) {
        let text = serde_json::to_string(&v).expect("serializes");
        let node = parse(&text).expect("serde_json output parses");
        prop_assert_eq!(node.to_value(), v.clone());
        let out = to_string(&node);
        prop_assert_eq!(&out, &text);
        let pretty = serde_json::to_string_pretty(&v).expect("serializes");
        let node = parse(&pretty).expect("pretty output parses");
        prop_assert_eq!(serde_json::from_str::<Value>(&to_string(&node)).expect("ours parses"), v.clone());
        prop_assert_eq!(to_string(&Node::from_value(&v)), text);
    }

    #[test]
    fn never_panics_and_agrees_on_acceptance(s in "[\\[\\]{}\",:0-9a-z\\\\. eE+-]{0,24}") {
        prop_assert_eq!(parse(&s).is_ok(), serde_json::from_str::<Value>(&s).is_ok());
    }
}

proptest! {
    #[test]
    fn strings_of_any_content_agree_with_serde_json(
        s in "[a-z\"\\\\\u{0}-\u{1f}\u{7f}-\u{ff}é😀 ]{0,80}",
        pad in 0usize..9,
    ) {
        // Quoted raw (so control characters, quotes and backslashes hit every position of
        // the eight-byte scan) and properly encoded.
        let raw = format!("{}\"{s}\"", " ".repeat(pad));
        prop_assert_eq!(parse(&raw).is_ok(), serde_json::from_str::<Value>(&raw).is_ok());
        let encoded = serde_json::to_string(&s).expect("serializes");
        let node = parse(&encoded).expect("parses");
        prop_assert_eq!(node.as_str(), Some(s.as_str()));
        prop_assert_eq!(to_string(&node), encoded);
    }
}

/// The differential check (the `json_differential` fuzz target's property) on inputs where
/// the two parsers are most likely to part: number edges, escapes, duplicate keys, depth,
/// invalid UTF-8. Each verdict is stated, so a check that stopped comparing would fail here.
#[test]
fn differential_check_on_edge_cases() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let cases: Vec<(Vec<u8>, Verdict)> = vec![
        (b"-0".to_vec(), Verdict::Accepted),
        (b"[-0.0,0,-0e5]".to_vec(), Verdict::Accepted),
        (
            b"[18446744073709551615,18446744073709551616]".to_vec(),
            Verdict::Accepted,
        ),
        (
            b"[-9223372036854775808,-9223372036854775809]".to_vec(),
            Verdict::Accepted,
        ),
        (
            b"[1E5,1e-400,0e99999999999999999999,2.2250738585072011e-308]".to_vec(),
            Verdict::Accepted,
        ),
        (
            b"[0.1,0.30000000000000004,1.7976931348623157e308]".to_vec(),
            Verdict::Accepted,
        ),
        (
            format!("[{}]", "9".repeat(299)).into_bytes(),
            Verdict::Accepted,
        ),
        (
            format!("[{}.5]", "1".repeat(308)).into_bytes(),
            Verdict::Accepted,
        ),
        (
            format!("[{}]", "9".repeat(310)).into_bytes(),
            Verdict::Rejected,
        ),
        (
            b"[0.1e309,0.001e310,1000e305,-0.0000e99999999999999999999]".to_vec(),
            Verdict::Accepted,
        ),
        (
            format!("0.{}1e400", "0".repeat(400)).into_bytes(),
            Verdict::Accepted,
        ),
        (
            format!("{}e-400", "1".repeat(400)).into_bytes(),
            Verdict::Accepted,
        ),
        (b"1000e306".to_vec(), Verdict::Rejected),
        (b"1e9999999999999999999".to_vec(), Verdict::Rejected),
        (b"1.7976931348623159e308".to_vec(), Verdict::Rejected),
        (b"[1e400]".to_vec(), Verdict::Rejected),
        (b"{\"a\":1,\"b\":2,\"a\":3}".to_vec(), Verdict::Accepted),
        (b"{\"a\":{\"x\":1},\"a\":[2]}".to_vec(), Verdict::Accepted),
        (
            br#"["\ud83d\ude00","\u00e9","\/","\u0000"]"#.to_vec(),
            Verdict::Accepted,
        ),
        (br#""\ud83d""#.to_vec(), Verdict::Rejected),
        (br#""\ude00\ud83d""#.to_vec(), Verdict::Rejected),
        (b"\"\xc3\xa9\"".to_vec(), Verdict::Accepted),
        (b"\"\xc3\"".to_vec(), Verdict::Rejected),
        (b"\"\xed\xa0\x80\"".to_vec(), Verdict::Rejected),
        (b"\xef\xbb\xbf{}".to_vec(), Verdict::Rejected),
        (b" \t\r\n{} \t\r\n".to_vec(), Verdict::Accepted),
        (b"{}\x0c".to_vec(), Verdict::Rejected),
        (b"{} {}".to_vec(), Verdict::Rejected),
        (deep(127), Verdict::Accepted),
        (deep(128), Verdict::Rejected),
        (Vec::new(), Verdict::Rejected),
    ];
    for (input, verdict) in cases {
        assert_eq!(
            check_against_serde_json(&input),
            Ok(verdict),
            "{:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

/// `Value`'s own `==` would pass all of these; the check must not.
#[test]
fn same_value_is_stricter_than_value_eq() {
    let parse_value = |s: &str| serde_json::from_str::<Value>(s).expect("valid");
    for (a, b) in [
        (r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#),
        ("[-0.0]", "[0.0]"),
        ("1", "1.0"),
        ("-1", "-1.0"),
        ("[1,[2]]", "[1,[3]]"),
        (r#"{"a":"x"}"#, r#"{"a":"y"}"#),
    ] {
        let (x, y) = (parse_value(a), parse_value(b));
        assert!(same_value(&x, &y, "$").is_err(), "{a} vs {b}");
    }
    assert_eq!(
        same_value(
            &parse_value(r#"{"a":1,"b":2}"#),
            &parse_value(r#"{"b":2,"a":1}"#),
            "$"
        ),
        Err(r#"$: key order: ours "a", serde_json "b""#.to_owned())
    );
    let v = parse_value(r#"{"a":[1,-1,1.5,-0.0,"s",null,true,{}],"b":18446744073709551615}"#);
    assert_eq!(same_value(&v, &v.clone(), "$"), Ok(()));
}

/// Bytes that move a JSON text across the grammar's edges when inserted or swapped in.
fn mutation_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"{}[]\",:\\/-+.eE019tfnu \t\r\n\x00\x1f\x7f\xc3\xa9\xff".to_vec()),
        1 => any::<u8>(),
    ]
}

/// Applies `(position, operation, byte)` edits: replace, insert, delete, truncate.
fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, op, byte) in edits {
        let i = at.index(bytes.len() + 1);
        match op % 4 {
            0 if i < bytes.len() => bytes[i] = *byte,
            1 => bytes.insert(i, *byte),
            2 if i < bytes.len() => {
                bytes.remove(i);
            }
            3 => bytes.truncate(i),
            _ => bytes.push(*byte),
        }
    }
    bytes
}

/// Number texts across the grammar and across `f64`/`u64`/`i64` boundaries, valid or not.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        "-?[0-9]{290,320}(\\.[0-9]{0,3})?",
        "-?(0|1|9)[0-9]{0,2}\\.?[0-9]{0,2}[eE]?[+-]?[0-9]{0,4}",
        "-?(1844674407370955161[0-9]|922337203685477580[0-9])",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The fuzz target's property on generated JSON (compact and pretty) and on mutations
    /// of it: the unmutated text must be accepted, every variant must agree.
    #[test]
    fn differential_on_generated_and_mutated_json(
        v in arb_value(),
        pretty in any::<bool>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<u8>(), mutation_byte()),
            1..5,
        ),
    ) {
        let text = if pretty {
            serde_json::to_vec_pretty(&v)
        } else {
            serde_json::to_vec(&v)
        }
        .expect("serializes");
        prop_assert_eq!(check_against_serde_json(&text), Ok(Verdict::Accepted));
        let mutated = mutate(text, &edits);
        let verdict = check_against_serde_json(&mutated);
        prop_assert!(verdict.is_ok(), "{:?} on {:?}", verdict, String::from_utf8_lossy(&mutated));
    }

    /// Number texts and duplicate keys, which the `Value` generator cannot write.
    #[test]
    fn differential_on_number_texts_and_duplicate_keys(
        numbers in prop::collection::vec(number_text(), 1..6),
        keys in prop::collection::vec("[ab]", 1..6),
    ) {
        let array = format!("[{}]", numbers.join(","));
        let array_verdict = check_against_serde_json(array.as_bytes());
        prop_assert!(array_verdict.is_ok(), "{:?} on {}", array_verdict, array);
        let members: Vec<String> = keys
            .iter()
            .zip(numbers.iter().cycle())
            .map(|(k, n)| format!("\"{k}\":{n}"))
            .collect();
        let object = format!("{{{}}}", members.join(","));
        let object_verdict = check_against_serde_json(object.as_bytes());
        prop_assert!(object_verdict.is_ok(), "{:?} on {}", object_verdict, object);
    }
}
