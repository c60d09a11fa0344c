//! Message templates and their parameters: `logentry.message` with `params`, and a log
//! item's `sentry.message.template` with its `sentry.message.parameter.N` attributes. A
//! parameter alone (`"1975-06-08"`, `"Jane Doe"`) says nothing; its placeholder's context
//! in the template (`DOB %s`, `for patient %s`, `ssn=%s`) does. Each parameter is judged
//! with that context, the formatted text is rebuilt from the judged parameters when it
//! was formatted from them, and every later pass (the formatted text's own scan, echo)
//! sees the same values.

use crate::json::{Node, Object};
use crate::scrub::profile::PERSON_CONTEXT_WORDS;

use super::*;

/// Which parameter a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ArgRef {
    Index(usize),
    Name(String),
}

/// A template cut into literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Literal(String),
    Arg(ArgRef),
}

/// At most this many placeholders are judged in one template (a template is code, and a
/// long one is not a log message).
const MAX_ARGS: usize = 64;
/// How many words before a placeholder can name it (`medical record number %s`).
const CONTEXT_WORDS: usize = 4;
/// Words that end a phrase without naming what follows.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "is", "of", "on", "or", "the",
    "to", "was", "were", "with", "via", "after", "before", "has", "had", "have",
];
/// Longer "templates" are not judged: a message that long is text, not a format string.
const MAX_TEMPLATE_LEN: usize = 4096;

/// Cuts `template` into literals and placeholders: printf (`%s`, `%d`, `%r`, `%(name)s`,
/// Node's `%o`/`%j`/`%i`/`%f`), `str.format` and Rust/JS-style (`{}`, `{0}`, `{name}`,
/// `{name!r}`, `{:>8}`). `%%`, `{{` and `}}` are literal. `None` if it has no placeholder.
pub(super) fn parse(template: &str) -> Option<Vec<Segment>> {
    if template.len() > MAX_TEMPLATE_LEN {
        return None;
    }
    let b = template.as_bytes();
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut next_index = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let arg = match b[i] {
            b'%' => printf_arg(template, i, &mut next_index),
            b'{' => brace_arg(template, i, &mut next_index),
            b'}' if b.get(i + 1) == Some(&b'}') => Some((None, i + 2)),
            _ => None,
        };
        match arg {
            Some((Some(arg), end)) => {
                if !lit.is_empty() {
                    segs.push(Segment::Literal(std::mem::take(&mut lit)));
                }
                segs.push(Segment::Arg(arg));
                if segs.len() > 2 * MAX_ARGS {
                    return None;
                }
                i = end;
            }
            // `%%`, `{{`, `}}`: the character itself.
            Some((None, end)) => {
                lit.push_str(template.get(i + 1..end).unwrap_or(""));
                i = end;
            }
            None => {
                let len = template[i..].chars().next().map_or(1, char::len_utf8);
                lit.push_str(template.get(i..i + len).unwrap_or(""));
                i += len;
            }
        }
    }
    if !lit.is_empty() {
        segs.push(Segment::Literal(lit));
    }
    segs.iter()
        .any(|s| matches!(s, Segment::Arg(_)))
        .then_some(segs)
}

/// A printf placeholder at `at` (a `%`): the argument and where it ends, `Some((None, _))`
/// for `%%`.
fn printf_arg(t: &str, at: usize, next: &mut usize) -> Option<(Option<ArgRef>, usize)> {
    let b = t.as_bytes();
    let mut j = at + 1;
    match b.get(j)? {
        b'%' => return Some((None, j + 1)),
        b'(' => {
            let close = t[j..].find(')')? + j;
            let name = &t[j + 1..close];
            if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return None;
            }
            j = close + 1;
            let end = printf_conversion(b, j)?;
            return Some((Some(ArgRef::Name(name.to_owned())), end));
        }
        _ => {}
    }
    let end = printf_conversion(b, j)?;
    let index = *next;
    *next += 1;
    Some((Some(ArgRef::Index(index)), end))
}

/// Flags, width and precision, then the conversion letter.
fn printf_conversion(b: &[u8], mut j: usize) -> Option<usize> {
    while j < b.len() && matches!(b[j], b'-' | b'+' | b' ' | b'#' | b'0'..=b'9' | b'.') {
        j += 1;
    }
    match b.get(j)? {
        b's' | b'd' | b'i' | b'r' | b'f' | b'o' | b'j' | b'O' | b'u' | b'x' | b'g' | b'e' => {
            Some(j + 1)
        }
        _ => None,
    }
}

/// A brace placeholder at `at` (a `{`): `{}`, `{0}`, `{name}`, with an optional
/// conversion (`!r`) and format spec (`:>8`); `Some((None, _))` for `{{`.
fn brace_arg(t: &str, at: usize, next: &mut usize) -> Option<(Option<ArgRef>, usize)> {
    let b = t.as_bytes();
    if b.get(at + 1) == Some(&b'{') {
        return Some((None, at + 2));
    }
    let close = t[at..].find('}')? + at;
    let inner = &t[at + 1..close];
    let field = inner.split([':', '!']).next().unwrap_or("");
    if field.len() > 64 || inner.contains(['{', ' ', '"', '\'']) {
        return None;
    }
    let arg = if field.is_empty() {
        let index = *next;
        *next += 1;
        ArgRef::Index(index)
    } else if let Ok(n) = field.parse::<usize>() {
        ArgRef::Index(n)
    } else if field
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
    {
        ArgRef::Name(field.to_owned())
    } else {
        return None;
    };
    Some((Some(arg), close + 1))
}

/// The parameters of one template, as text, with what judging made of them.
#[derive(Debug, Default)]
pub(super) struct Params {
    /// `(reference, original text, judged text)`; a parameter that is not a string or a
    /// number has no text and is left to the ordinary walk.
    pub(super) values: Vec<(ArgRef, String, Option<String>)>,
    /// Each parameter's path relative to the object being judged, for the report.
    pub(super) paths: Vec<String>,
}

impl Params {
    fn get(&self, arg: &ArgRef) -> Option<&(ArgRef, String, Option<String>)> {
        self.values.iter().find(|(r, _, _)| r == arg)
    }

    /// The template with every known parameter in place (original or judged); unknown
    /// ones stay as `{}` so no text is invented. Also returns each parameter's byte span.
    fn render(&self, segs: &[Segment], judged: bool) -> (String, Vec<(usize, usize, usize)>) {
        let mut out = String::new();
        let mut spans = Vec::new();
        for seg in segs {
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Arg(arg) => match self.values.iter().position(|(r, _, _)| r == arg) {
                    Some(p) => {
                        let (_, orig, new) = &self.values[p];
                        let text = if judged {
                            new.as_deref().unwrap_or(orig)
                        } else {
                            orig
                        };
                        spans.push((p, out.len(), out.len() + text.len()));
                        out.push_str(text);
                    }
                    None => out.push_str("{}"),
                },
            }
        }
        (out, spans)
    }
}

/// A scalar parameter's text (strings, and numbers as written).
fn param_text(node: &Node<'_>) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.to_string()),
        Node::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Engine {
    /// Judges every parameter of `segs` with its placeholder's context, in place in
    /// `params`: first the key its preceding words name (`ssn=%s`, `date of birth: %s`,
    /// `MRN {}`) as a JSON key of that name would be, then the value detectors over the
    /// rendered message (`born %s`, `for patient %s`).
    pub(super) fn judge_params(&self, segs: &[Segment], params: &mut Params, cx: &mut Cx) {
        let mut before = "";
        for (i, seg) in segs.iter().enumerate() {
            match seg {
                Segment::Literal(l) => before = l,
                Segment::Arg(arg) => {
                    let Some(p) = params.values.iter().position(|(r, _, _)| r == arg) else {
                        continue;
                    };
                    if params.values[p].2.is_some() {
                        continue;
                    }
                    let value = params.values[p].1.clone();
                    let len = cx.push(params.paths.get(p).map_or("", String::as_str));
                    // A named placeholder names its value as a JSON key would
                    // (`Card declined for {email}`).
                    let by_name = match arg {
                        ArgRef::Name(name) => self
                            .key_class(name, cx)
                            .and_then(|class| self.redact_class(class, &value, cx)),
                        ArgRef::Index(_) => None,
                    };
                    // `postgresql://app:%s@db/emr`: the placeholder is a URL's password.
                    let after = match segs.get(i + 1) {
                        Some(Segment::Literal(l)) => l.as_str(),
                        _ => "",
                    };
                    let in_userinfo = || {
                        userinfo_password_slot(before, after)
                            .then(|| self.redact_rule(Structural::UrlPassword, &value, cx))
                            .flatten()
                    };
                    if let Some(new) = by_name
                        .or_else(in_userinfo)
                        .or_else(|| self.judge_by_context(before, &value, cx))
                    {
                        params.values[p].2 = Some(new);
                    }
                    cx.pop(len);
                    before = "";
                }
            }
        }
        let (rendered, spans) = params.render(segs, true);
        let mut hits = Vec::new();
        if !self.scan(&rendered, "message", cx, &mut hits) {
            return;
        }
        for (p, start, end) in spans {
            let Some(value) = rendered.get(start..end) else {
                continue;
            };
            let mut out = String::new();
            let mut last = start;
            let mut counts: Vec<usize> = Vec::new();
            for hit in &hits {
                if hit.end <= start || hit.start >= end {
                    continue;
                }
                let Some(det) = self.scanner.detectors.get(hit.detector) else {
                    continue;
                };
                if det.kind != HitKind::Redact {
                    continue;
                }
                let (s, e) = (hit.start.max(start), hit.end.min(end));
                let (Some(part), Some(gap)) = (rendered.get(s..e), rendered.get(last..s)) else {
                    continue;
                };
                if s < last || self.is_label(part) {
                    continue;
                }
                let action = self
                    .scanner
                    .action(hit.detector)
                    .unwrap_or_else(|| self.rules.action(Structural::Unsettled));
                let new = self.redactor.apply(action, part);
                if new == part {
                    continue;
                }
                out.push_str(gap);
                out.push_str(&new);
                last = e;
                counts.push(hit.detector);
            }
            if counts.is_empty() {
                continue;
            }
            out.push_str(rendered.get(last..end).unwrap_or(""));
            if out != value {
                let len = cx.push(params.paths.get(p).map_or("", String::as_str));
                for det in counts {
                    if let Some(a) = self.scanner.action(det) {
                        cx.record(&a.rule, a.method, 1);
                    }
                }
                cx.pop(len);
                params.values[p].2 = Some(out);
            }
        }
    }

    /// The class the words right before a placeholder name, tried longest first as a key
    /// (`date of birth` → `date_of_birth`), then a person word (`patient`) before a
    /// value that reads as a personal name.
    fn judge_by_context(&self, before: &str, value: &str, cx: &mut Cx) -> Option<String> {
        if value.trim().is_empty() || self.is_label(value) {
            return None;
        }
        let words: Vec<&str> = before
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .filter(|w| !w.is_empty())
            .collect();
        // Only words that end right before the placeholder (separators such as `=`, `:`,
        // `#`, quotes or brackets in between): `ssn=%s`, `MRN: {}`, `dob '%s'`.
        let tail = before.trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, '=' | ':' | '#' | '"' | '\'' | '(' | '[' | '<' | '-')
        });
        if words.is_empty() || !tail.ends_with(words[words.len() - 1]) {
            return None;
        }
        let n = words.len();
        let last = words[n - 1].to_ascii_lowercase();
        // `Card declined for %s`: the words before a function word describe something
        // else, not the value.
        if FUNCTION_WORDS.contains(&last.as_str()) {
            return None;
        }
        if PERSON_CONTEXT_WORDS.contains(&last.as_str()) && reads_as_name(value) {
            return self.redact_class(KeyClass::Name, value, cx);
        }
        for take in (1..=CONTEXT_WORDS.min(n)).rev() {
            let key = words[n - take..].join("_").to_ascii_lowercase();
            if let Some(class) = self.key_class(&key, cx) {
                return self.redact_class(class, value, cx);
            }
        }
        None
    }

    /// `logentry` (or an object `message`): `message` + `params` (+ `formatted`).
    pub(super) fn logentry(&self, map: &mut Object<'_>, cx: &mut Cx) {
        // The template as this scrub writes it: the next scrub parses that one, and must
        // give the parameters the same context.
        for (key, child) in map.iter_mut() {
            if key.as_str() == "message" && child.is_string() {
                let len = cx.push(key);
                self.walk_value(child, "message", cx);
                cx.pop(len);
            }
        }
        let Some(template) = map.get("message").and_then(Node::as_str).map(str::to_owned) else {
            return;
        };
        let Some(segs) = parse(&template) else {
            return;
        };
        let mut params = Params::default();
        match map.get("params") {
            Some(Node::Array(items)) => {
                for (i, item) in items.iter().enumerate().take(MAX_ARGS) {
                    if let Some(text) = param_text(item) {
                        params.values.push((ArgRef::Index(i), text, None));
                        params.paths.push(format!("params.{i}"));
                    }
                }
            }
            Some(Node::Object(obj)) => {
                for (k, item) in obj.iter().take(MAX_ARGS) {
                    if let Some(text) = param_text(item) {
                        params
                            .values
                            .push((ArgRef::Name(k.to_string()), text, None));
                        params.paths.push(format!("params.{}", k.as_str()));
                    }
                }
            }
            _ => return,
        }
        self.judge_params(&segs, &mut params, cx);
        let (orig_render, _) = params.render(&segs, false);
        let (new_render, _) = params.render(&segs, true);
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("params", Node::Array(items)) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        if let Some((_, _, Some(new))) = params.get(&ArgRef::Index(i)) {
                            *item = Node::string(new.clone());
                        }
                    }
                }
                ("params", Node::Object(obj)) => {
                    for (k, item) in obj.iter_mut() {
                        if let Some((_, _, Some(new))) = params.get(&ArgRef::Name(k.to_string())) {
                            *item = Node::string(new.clone());
                        }
                    }
                }
                ("formatted", Node::Str(s))
                    if new_render != orig_render && &**s == orig_render.as_str() =>
                {
                    s.set(new_render.clone());
                    cx.record("echo", Method::Replace, 1);
                }
                _ => {}
            }
            cx.pop(len);
        }
    }

    /// A log item: its template attribute, its parameter attributes and its `body`.
    pub(super) fn log_template(&self, item: &mut Object<'_>, cx: &mut Cx) {
        if !matches!(item.get("attributes"), Some(Node::Object(_))) {
            return;
        }
        let attr_value = |a: &Node<'_>| -> Option<String> {
            match a {
                Node::Object(o) => o.get("value").and_then(param_text),
                other => param_text(other),
            }
        };
        // The template as this scrub writes it (see `logentry`).
        if let Some(Node::Object(attrs)) = item.get_mut("attributes") {
            for (name, attr) in attrs.iter_mut() {
                if name.as_str() != "sentry.message.template" {
                    continue;
                }
                let l1 = cx.push("attributes");
                let l2 = cx.push(name);
                match attr {
                    Node::Object(typed) => {
                        for (k, v) in typed.iter_mut() {
                            if k.as_str() == "value" && v.is_string() {
                                let l3 = cx.push(k);
                                self.walk_value(v, "sentry.message.template", cx);
                                cx.pop(l3);
                            }
                        }
                    }
                    other if other.is_string() => {
                        self.walk_value(other, "sentry.message.template", cx)
                    }
                    _ => {}
                }
                cx.pop(l2);
                cx.pop(l1);
            }
        }
        let Some(Node::Object(attrs)) = item.get("attributes") else {
            return;
        };
        let Some(template) = attrs.get("sentry.message.template").and_then(attr_value) else {
            return;
        };
        let Some(segs) = parse(&template) else {
            return;
        };
        let mut params = Params::default();
        for (name, attr) in attrs.iter() {
            let Some(rest) = name.strip_prefix("sentry.message.parameter.") else {
                continue;
            };
            let arg = match rest.parse::<usize>() {
                Ok(i) => ArgRef::Index(i),
                Err(_) => ArgRef::Name(rest.to_owned()),
            };
            if let Some(text) = attr_value(attr) {
                params.values.push((arg, text, None));
                params
                    .paths
                    .push(format!("attributes.{}.value", name.as_str()));
            }
            if params.values.len() >= MAX_ARGS {
                break;
            }
        }
        self.judge_params(&segs, &mut params, cx);
        let (orig_render, _) = params.render(&segs, false);
        let (new_render, _) = params.render(&segs, true);
        for (key, child) in item.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("attributes", Node::Object(attrs)) => {
                    for (name, attr) in attrs.iter_mut() {
                        let Some(rest) = name.strip_prefix("sentry.message.parameter.") else {
                            continue;
                        };
                        let arg = match rest.parse::<usize>() {
                            Ok(i) => ArgRef::Index(i),
                            Err(_) => ArgRef::Name(rest.to_owned()),
                        };
                        let Some((_, _, Some(new))) = params.get(&arg) else {
                            continue;
                        };
                        match attr {
                            Node::Object(o) => {
                                for (k, v) in o.iter_mut() {
                                    if k.as_str() == "value" {
                                        *v = Node::string(new.clone());
                                    }
                                }
                                // A typed attribute keeps saying what it holds.
                                for (k, v) in o.iter_mut() {
                                    if k.as_str() == "type" && v.as_str() != Some("string") {
                                        *v = Node::string("string".to_owned());
                                    }
                                }
                            }
                            other => *other = Node::string(new.clone()),
                        }
                    }
                }
                ("body", Node::Str(s))
                    if new_render != orig_render && &**s == orig_render.as_str() =>
                {
                    s.set(new_render.clone());
                    cx.record("echo", Method::Replace, 1);
                }
                _ => {}
            }
            cx.pop(len);
        }
    }
}

/// One to four words, each a capital letter then letters (or `'`, `-`, `.`): what a
/// personal name looks like when a person word says it is one.
/// Whether a placeholder stands where a URL's password does: after `scheme://user:` (or
/// `scheme://:`) and before `@`.
fn userinfo_password_slot(before: &str, after: &str) -> bool {
    if !after.starts_with('@') || !before.ends_with(':') {
        return false;
    }
    let token = before
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '<' | '='))
        .next()
        .unwrap_or("");
    token
        .find("://")
        .is_some_and(|at| !token[at + 3..].contains(['/', '@']))
}

fn reads_as_name(value: &str) -> bool {
    let words: Vec<&str> = value.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 4
        && words.iter().all(|w| {
            let mut chars = w.chars();
            chars.next().is_some_and(char::is_uppercase)
                && chars.all(|c| c.is_alphabetic() || matches!(c, '\'' | '-' | '.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }

    #[test]
    fn parses_printf_format_and_brace_placeholders() {
        assert_eq!(
            parse("DOB %s for %(who)s, 100%% sure"),
            Some(vec![
                lit("DOB "),
                Segment::Arg(ArgRef::Index(0)),
                lit(" for "),
                Segment::Arg(ArgRef::Name("who".into())),
                lit(", 100% sure"),
            ])
        );
        assert_eq!(
            parse("MRN {} / {name!r} / {1:>8} {{x}}"),
            Some(vec![
                lit("MRN "),
                Segment::Arg(ArgRef::Index(0)),
                lit(" / "),
                Segment::Arg(ArgRef::Name("name".into())),
                lit(" / "),
                Segment::Arg(ArgRef::Index(1)),
                lit(" {x}"),
            ])
        );
        assert_eq!(parse("no placeholders, 100% plain {json: 1}"), None);
        assert_eq!(
            parse("%d%%"),
            Some(vec![Segment::Arg(ArgRef::Index(0)), lit("%")])
        );
    }

    #[test]
    fn placeholders_in_a_url_password_slot() {
        assert!(userinfo_password_slot(
            "connect to postgresql://app:",
            "@db/emr"
        ));
        assert!(userinfo_password_slot("redis://:", "@cache:6379"));
        assert!(!userinfo_password_slot("postgresql://db/x?user=", "@x"));
        assert!(!userinfo_password_slot("time: ", "@ noon"));
        assert!(!userinfo_password_slot("https://a@b.org/x:", "@y"));
    }

    #[test]
    fn names_read_as_names() {
        assert!(reads_as_name("Jane Doe"));
        assert!(reads_as_name("Mary-Kate O'Neil"));
        assert!(!reads_as_name("jdoe"));
        assert!(!reads_as_name("Order 1234"));
        assert!(!reads_as_name(""));
    }
}
