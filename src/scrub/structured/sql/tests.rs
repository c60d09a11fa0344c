//! SQL literal stripping: examples, and agreement with the first (char-based) version.

use super::strip_literals;
use proptest::prelude::*;

fn s(sql: &str) -> String {
    strip_literals(sql).0
}

#[test]
fn strips_strings_and_numbers() {
    assert_eq!(
        s("SELECT * FROM t WHERE ssn = '123-45-6789'"),
        "SELECT * FROM t WHERE ssn = ?"
    );
    assert_eq!(
        s("WHERE id = 42 AND x IN (1, 2.5, -3)"),
        "WHERE id = ? AND x IN (?, ?, -?)"
    );
    assert_eq!(
        s("WHERE name = 'O''Brien' LIMIT 10"),
        "WHERE name = ? LIMIT ?"
    );
    assert_eq!(s(r"WHERE a = 'it\'s'"), "WHERE a = ?");
    assert_eq!(
        s("WHERE a = $$secret$$ OR b = $x$y$x$"),
        "WHERE a = ? OR b = ?"
    );
    assert_eq!(s("WHERE h = 0xFF"), "WHERE h = ?");
}

#[test]
fn keeps_identifiers_and_placeholders() {
    let q = "SELECT t1.col2, \"Col 3\" FROM table1 t1 WHERE id = %s AND b = $1 AND c = :name AND d = ? AND e = @p1";
    assert_eq!(strip_literals(q), (q.to_owned(), 0));
    assert_eq!(s("SELECT 1 -- note 42\n"), "SELECT ? -- note 42\n");
    assert_eq!(s("x = 'unterminated"), "x = ?");
}

#[test]
fn stripping_twice_changes_nothing_more() {
    // Fuzz finding: `'a'7$$$$` became `?7$$$$`, and a second pass read the `$$$$` after
    // the placeholder as a dollar-quoted literal.
    for q in [
        "x = 7778'7+7777 8'7$$$$;",
        "a = ?7$$b$$",
        "WHERE id = 42 AND t1.c2 = 'x'",
    ] {
        let once = s(q);
        assert_eq!(strip_literals(&once), (once.clone(), 0), "{q}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn bytes_version_agrees_with_the_char_version(
        sql in "([a-zA-Zé€_$#0-9.'\"`\\\\:@%?/*\n +-]|--|/\\*|\\*/|\\$\\$|0x|1e5|'')*"
    ) {
        prop_assert_eq!(strip_literals(&sql), reference_strip_literals(&sql));
    }

    #[test]
    fn agrees_on_any_text(sql in any::<String>()) {
        prop_assert_eq!(strip_literals(&sql), reference_strip_literals(&sql));
    }
}

/// The first implementation (on `char`s): the byte version must agree with it exactly.
fn reference_strip_literals(sql: &str) -> (String, u32) {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut count = 0u32;
    let mut i = 0usize;
    let n = chars.len();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || c == '#';
    while i < n {
        let c = chars[i];
        match c {
            '\'' => {
                // string literal: '' and \' escapes
                i += 1;
                while i < n {
                    if chars[i] == '\\' && i + 1 < n {
                        i += 2;
                        continue;
                    }
                    if chars[i] == '\'' {
                        if i + 1 < n && chars[i + 1] == '\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                out.push('?');
                count += 1;
            }
            '"' | '`' => {
                // quoted identifier: copied
                out.push(c);
                i += 1;
                while i < n {
                    out.push(chars[i]);
                    if chars[i] == c {
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            '-' if i + 1 < n && chars[i + 1] == '-' => {
                while i < n && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '/' if i + 1 < n && chars[i + 1] == '*' => {
                out.push_str("/*");
                i += 2;
                while i < n {
                    if chars[i] == '*' && i + 1 < n && chars[i + 1] == '/' {
                        out.push_str("*/");
                        i += 2;
                        break;
                    }
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '$' => {
                // $1 placeholder, or $tag$ … $tag$ dollar quoting
                if i + 1 < n && chars[i + 1].is_ascii_digit() {
                    out.push('$');
                    i += 1;
                    while i < n && chars[i].is_ascii_digit() {
                        out.push(chars[i]);
                        i += 1;
                    }
                    continue;
                }
                let mut j = i + 1;
                while j < n && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if j < n && chars[j] == '$' {
                    let tag = &chars[i..=j];
                    let mut k = j + 1;
                    let mut end = n;
                    while k + tag.len() <= n {
                        if chars[k..k + tag.len()] == *tag {
                            end = k + tag.len();
                            break;
                        }
                        k += 1;
                    }
                    out.push('?');
                    count += 1;
                    i = end;
                } else {
                    for &ch in &chars[i..j] {
                        out.push(ch);
                    }
                    i = j;
                }
            }
            d if d.is_ascii_digit() => {
                let prev = if i > 0 { Some(chars[i - 1]) } else { None };
                let glued = match prev {
                    Some(p) if is_ident(p) => true,
                    Some('.') => i >= 2 && is_ident(chars[i - 2]),
                    Some(':') | Some('@') | Some('%') | Some('?') => true,
                    _ => false,
                };
                if glued {
                    // Part of a name or placeholder (`t1`, `?1`, `:p2`): copy the whole run,
                    // so a second pass reads it the same way (`?7$$` is not a `$$` quote).
                    while i < n && is_ident(chars[i]) {
                        out.push(chars[i]);
                        i += 1;
                    }
                    continue;
                }
                let mut j = i;
                if d == '0' && j + 1 < n && (chars[j + 1] == 'x' || chars[j + 1] == 'X') {
                    j += 2;
                    while j < n && chars[j].is_ascii_hexdigit() {
                        j += 1;
                    }
                } else {
                    while j < n && (chars[j].is_ascii_digit() || chars[j] == '.') {
                        j += 1;
                    }
                    if j < n && (chars[j] == 'e' || chars[j] == 'E') {
                        let mut k = j + 1;
                        if k < n && (chars[k] == '+' || chars[k] == '-') {
                            k += 1;
                        }
                        if k < n && chars[k].is_ascii_digit() {
                            j = k;
                            while j < n && chars[j].is_ascii_digit() {
                                j += 1;
                            }
                        }
                    }
                }
                if j < n && is_ident(chars[j]) {
                    // e.g. 3d_table: an identifier, not a number
                    while j < n && is_ident(chars[j]) {
                        j += 1;
                    }
                    for &ch in &chars[i..j] {
                        out.push(ch);
                    }
                } else {
                    out.push('?');
                    count += 1;
                }
                i = j;
            }
            c if is_ident(c) => {
                while i < n && is_ident(chars[i]) {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, count)
}
