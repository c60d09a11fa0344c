//! SQL literal stripping: string and numeric literals become `?`, everything else
//! (keywords, identifiers, quoted identifiers, placeholders, comments) is kept.
//! `WHERE ssn = '123-45-6789'` → `WHERE ssn = ?`.

/// Returns the statement with literals replaced and how many were replaced.
///
/// Works on bytes and copies every run it keeps in one piece: everything SQL gives
/// meaning to is ASCII, and a non-ASCII character is only ever part of an identifier (if
/// alphanumeric) or copied as it is, so positions stay on character boundaries.
pub(crate) fn strip_literals(sql: &str) -> (String, u32) {
    let b = sql.as_bytes();
    let n = b.len();
    let mut out = String::with_capacity(n);
    let mut count = 0u32;
    // sql[copied..] has not been written to `out` yet; everything is kept except the
    // literal ranges, which become `?`.
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < n {
        let c = b[i];
        match c {
            b'\'' => {
                // string literal: '' and \' escapes
                let start = i;
                i += 1;
                while i < n {
                    if b[i] == b'\\' && i + 1 < n {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if i + 1 < n && b[i + 1] == b'\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i = (i + 1).min(n);
                replace(sql, &mut out, &mut copied, start, i);
                count += 1;
            }
            b'"' | b'`' => {
                // quoted identifier: kept
                i += 1;
                while i < n {
                    i += 1;
                    if b[i - 1] == c {
                        break;
                    }
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < n {
                    if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            b'$' => {
                // $1 placeholder, or $tag$ … $tag$ dollar quoting
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < n && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                let mut j = i + 1;
                while let Some(len) = char_len_if(sql, j, |ch| ch.is_alphanumeric() || ch == '_') {
                    j += len;
                }
                if j < n && b[j] == b'$' {
                    let tag = &b[i..=j];
                    let end = find(&b[j + 1..], tag).map_or(n, |at| j + 1 + at + tag.len());
                    replace(sql, &mut out, &mut copied, i, end);
                    count += 1;
                    i = end;
                } else {
                    i = j;
                }
            }
            d if d.is_ascii_digit() => {
                if digit_is_glued(sql, i) {
                    // Part of a name or placeholder (`t1`, `?1`, `:p2`): keep the whole run,
                    // so a second pass reads it the same way (`?7$$` is not a `$$` quote).
                    i = skip_ident(sql, i);
                    continue;
                }
                let mut j = i;
                if d == b'0' && matches!(b.get(j + 1), Some(b'x' | b'X')) {
                    j += 2;
                    while j < n && b[j].is_ascii_hexdigit() {
                        j += 1;
                    }
                } else {
                    while j < n && (b[j].is_ascii_digit() || b[j] == b'.') {
                        j += 1;
                    }
                    if j < n && (b[j] == b'e' || b[j] == b'E') {
                        let mut k = j + 1;
                        if k < n && (b[k] == b'+' || b[k] == b'-') {
                            k += 1;
                        }
                        if k < n && b[k].is_ascii_digit() {
                            j = k;
                            while j < n && b[j].is_ascii_digit() {
                                j += 1;
                            }
                        }
                    }
                }
                if ident_len(sql, j).is_some() {
                    // e.g. 3d_table: an identifier, not a number
                    j = skip_ident(sql, j);
                } else {
                    replace(sql, &mut out, &mut copied, i, j);
                    count += 1;
                }
                i = j;
            }
            _ => match ident_len(sql, i) {
                Some(_) => i = skip_ident(sql, i),
                None => i += char_len(sql, i),
            },
        }
    }
    out.push_str(sql.get(copied..).unwrap_or_default());
    (out, count)
}

/// Writes the kept text before `start` and a `?` for `start..end`.
fn replace(sql: &str, out: &mut String, copied: &mut usize, start: usize, end: usize) {
    out.push_str(sql.get(*copied..start).unwrap_or_default());
    out.push('?');
    *copied = end;
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '#'
}

/// The byte length of the character at `i` if it satisfies `accept`.
fn char_len_if(sql: &str, i: usize, accept: impl Fn(char) -> bool) -> Option<usize> {
    let c = sql.get(i..)?.chars().next()?;
    accept(c).then(|| c.len_utf8())
}

/// The byte length of the identifier character at `i`, if it is one.
fn ident_len(sql: &str, i: usize) -> Option<usize> {
    match sql.as_bytes().get(i) {
        Some(&b) if b.is_ascii() => {
            (b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'#')).then_some(1)
        }
        Some(_) => char_len_if(sql, i, is_ident),
        None => None,
    }
}

fn skip_ident(sql: &str, mut i: usize) -> usize {
    while let Some(len) = ident_len(sql, i) {
        i += len;
    }
    i
}

fn char_len(sql: &str, i: usize) -> usize {
    sql.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

/// Whether the digit at `i` continues a name or placeholder (`t1`, `t1.2`, `?1`, `:p2`).
fn digit_is_glued(sql: &str, i: usize) -> bool {
    let before = sql.get(..i).unwrap_or_default();
    let mut prev = before.chars().rev();
    match prev.next() {
        Some('.') => prev.next().is_some_and(is_ident),
        Some(':' | '@' | '%' | '?') => true,
        Some(p) => is_ident(p),
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Whether `text` looks like a SQL statement (used where a field may hold SQL or not).
pub(crate) fn looks_like_sql(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    [
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH ", "REPLACE", "MERGE", "UPSERT", "CALL ",
    ]
    .iter()
    .any(|k| head.starts_with(k))
}

#[cfg(test)]
mod tests;
