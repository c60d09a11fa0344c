//! Echo: a value any rule removed is removed wherever else it appears in the same envelope
//! (every item, every string), with the replacement its first removal wrote.
//!
//! What is collected: the originals of key hits of every class, of the structural rules
//! that remove a value for what it is (user id, email, username and name, session `did`,
//! URL passwords, session cookies) and of detector hits. Each is bounded (see
//! [`Engine::collect_echo`]): only values specific enough that another occurrence is the
//! same datum, found as a whole token, at most [`MAX_ECHO_VALUES`] per envelope.
//!
//! [`MAX_ECHO_VALUES`]: crate::scrub::echo::MAX_ECHO_VALUES

use crate::json::Node;
use crate::scrub::echo::EchoSet;
use crate::scrub::redact::Action;

use super::*;

/// Values longer than this are not echoed: long values are whole documents or tokens
/// that their own rules (keys, `jwt`, `private_key`) find wherever they stand.
const MAX_ECHO_CHARS: usize = 256;

/// Detectors whose hits do not depend on where they stand (no keyword, key or path
/// context): every other copy of a hit is found by the detector itself, so echoing them
/// would only cost a search. Rule names of built-ins (a test checks each one exists).
pub(super) const FOUND_ANYWHERE: &[&str] = &[
    "private_key",
    "jwt",
    "aws_key",
    "github_token",
    "slack_token",
    "stripe_key",
    "card",
    "iban",
    "email",
    "ipv6",
    "ipv4",
    "mac",
    "dea",
    "address",
    "zip4",
];

/// Detectors that find person names: their hits are held to the bar of names.
pub(super) const NAME_DETECTORS: &[&str] = &["person_name", "full_name"];

/// Values that are never specific to a person or a secret, whatever key or rule they were
/// removed under (compared ignoring ASCII case): echoing `None` from a false name hit once
/// replaced every `None` of a 3-million-line corpus.
const COMMON_VALUES: &[&str] = &[
    "none",
    "null",
    "true",
    "false",
    "undefined",
    "infinity",
    "empty",
    "unknown",
    "default",
    "anonymous",
    "admin",
    "administrator",
    "root",
    "user",
    "username",
    "guest",
    "test",
    "tester",
    "testing",
    "demo",
    "example",
    "sample",
    "dummy",
    "placeholder",
    "password",
    "passwd",
    "secret",
    "token",
    "changeme",
    "redacted",
    "filtered",
    "hidden",
    "private",
    "public",
    "string",
    "object",
    "function",
    "bearer",
    "basic",
    "localhost",
    "unset",
    "name",
    "email",
    "phone",
    "value",
];

/// Where a removed value came from: decides whether it is echoed and how specific it must
/// be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EchoSource<'r> {
    /// The value under a sensitive key of this class.
    Class(KeyClass),
    /// A structural rule (`user.id`, a URL password, …).
    Rule(Structural),
    /// A detector hit, by the detector's rule name.
    Detector(&'r str),
}

/// How specific a value must be to be echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bar {
    /// A person's name or address (words): at least 3 characters, one of them a letter.
    Name,
    /// A value removed for where it stood (under a sensitive key, in a user field): the
    /// application said it is sensitive, so any specific value goes. At least 4 characters,
    /// one of them a letter or digit.
    Value,
    /// A detector's guess in free text: at least 4 characters with a digit or a symbol
    /// (`!#$%&*+=?@^|~`), so that a word or an identifier a detector took for a secret in a
    /// source line (`token = nextchar`) is not multiplied through the envelope.
    Guess,
}

impl EchoSource<'_> {
    /// `None`: values from this source are never echoed.
    fn bar(self) -> Option<Bar> {
        match self {
            EchoSource::Class(KeyClass::Name | KeyClass::Address) => Some(Bar::Name),
            // Every other class, including any added later: a value under a sensitive key.
            EchoSource::Class(_) => Some(Bar::Value),
            EchoSource::Rule(rule) => match rule {
                Structural::UserName => Some(Bar::Name),
                Structural::UserId
                | Structural::UserEmail
                | Structural::UserUsername
                | Structural::SessionDid
                | Structural::UrlPassword
                | Structural::Cookie => Some(Bar::Value),
                // The client IP is found by the IP detectors wherever it stands; user
                // agents, geo names and `_meta` originals are removed for where they are,
                // not for what they say; a SQL literal is any constant of a statement
                // (`'active'`, `1`), and `?` is no label to echo; the last two are echoes
                // and whole-string fallbacks, not values.
                Structural::ClientIp
                | Structural::ClientMeta
                | Structural::UserGeo
                | Structural::MetaValue
                | Structural::SqlLiteral
                | Structural::NameEcho
                | Structural::Unsettled => None,
            },
            EchoSource::Detector(rule) => {
                if FOUND_ANYWHERE.contains(&rule) {
                    None
                } else if NAME_DETECTORS.contains(&rule) {
                    Some(Bar::Name)
                } else {
                    Some(Bar::Guess)
                }
            }
        }
    }
}

impl Engine {
    /// Remembers `original`, removed by `action` from `source` and written as `written`,
    /// to be removed wherever else it appears in the envelope. Quotes and blanks around it
    /// are not part of the value (`'hunter2'` is how Python shows the local `hunter2`).
    pub(crate) fn collect_echo(
        &self,
        source: EchoSource<'_>,
        original: &str,
        action: &Action,
        written: &str,
        cx: &mut Cx,
    ) {
        if !self.echo_enabled {
            return;
        }
        let Some(bar) = source.bar() else {
            return;
        };
        let value = original.trim().trim_matches(['\'', '"']).trim();
        if !self.worth_echoing(bar, value) {
            return;
        }
        // The replacement the first removal wrote; where quotes or blanks came off, a mask
        // is made again for the bare value (a label or a pseudonym stays what it was: the
        // same value gets the same pseudonym everywhere).
        let replacement = if value.len() != original.len() && action.method == Method::Mask {
            self.redactor.apply(action, value)
        } else {
            written.to_owned()
        };
        cx.echo.insert(value, &replacement, action.method);
    }

    /// Whether `value` is specific enough that another copy of it is the same datum.
    fn worth_echoing(&self, bar: Bar, value: &str) -> bool {
        let chars = value.chars().count();
        let min = match bar {
            Bar::Name => 3,
            Bar::Value | Bar::Guess => 4,
        };
        if chars < min || chars > MAX_ECHO_CHARS {
            return false;
        }
        let specific = match bar {
            Bar::Name => value.chars().any(char::is_alphabetic),
            Bar::Value => value.chars().any(char::is_alphanumeric),
            Bar::Guess => value
                .chars()
                .any(|c| c.is_ascii_digit() || "!#$%&*+=?@^|~".contains(c)),
        };
        specific
            && !placeholder(value)
            && !COMMON_VALUES.iter().any(|w| w.eq_ignore_ascii_case(value))
            && !self.is_label(value)
            && self.scanner.inert_spans(value).is_empty()
    }

    /// Runs echo passes over `value` (each followed by a walk, as a second scrub would,
    /// since a label can change how a string parses), until a round changes nothing.
    pub(super) fn echo_rounds(&self, kind: PayloadKind, value: &mut Node<'_>, cx: &mut Cx) {
        for _ in 0..MAX_ECHO_ROUNDS {
            if cx.echo.is_empty() || !self.echo_enabled {
                break;
            }
            let before = cx.changes();
            self.echo_pass(value, cx);
            if cx.changes() == before {
                break;
            }
            let before = cx.changes();
            self.walk_kind(kind, value, cx);
            if cx.changes() == before {
                break;
            }
        }
    }

    fn echo_pass(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let mut echo = std::mem::take(&mut cx.echo);
        cx.path.clear();
        self.echo_walk(value, &mut echo, cx);
        cx.echo = echo;
    }

    fn echo_walk(&self, value: &mut Node<'_>, echo: &mut EchoSet, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some((new, counts)) = self.echo_string(s.as_str(), echo) {
                    s.set(new);
                    for (method, count) in counts {
                        cx.record("echo", method, count);
                    }
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.echo_walk(item, echo, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if self.is_schema_value(k, item, cx) {
                        continue;
                    }
                    let len = cx.push(k);
                    self.echo_walk(item, echo, cx);
                    cx.pop(len);
                }
            }
            Node::Number(_) | Node::Null | Node::Bool(_) => {}
        }
    }

    /// `s` with every whole-token copy of an echo value replaced, and how many were
    /// replaced per method; `None` if none was. Text scrubgate wrote (labels, pseudonyms)
    /// is never matched into.
    fn echo_string(&self, s: &str, echo: &mut EchoSet) -> Option<(String, Vec<(Method, u32)>)> {
        if self.is_label(s) {
            return None;
        }
        let (matcher, values) = echo.matcher();
        let mut out = String::new();
        let mut last = 0usize;
        let mut counts: Vec<(Method, u32)> = Vec::new();
        let mut inert: Option<Vec<(usize, usize)>> = None;
        for m in matcher.find_iter(s) {
            if !whole_token(s, m.start, m.end) {
                continue;
            }
            let Some(v) = values.get(m.pattern) else {
                continue;
            };
            let inert = inert.get_or_insert_with(|| self.scanner.inert_spans(s));
            if inert.iter().any(|&(a, b)| m.start < b && a < m.end) {
                continue;
            }
            out.push_str(s.get(last..m.start).unwrap_or(""));
            out.push_str(&v.replacement);
            last = m.end;
            match counts.iter_mut().find(|(method, _)| *method == v.method) {
                Some((_, c)) => *c += 1,
                None => counts.push((v.method, 1)),
            }
        }
        if counts.is_empty() {
            return None;
        }
        out.push_str(s.get(last..).unwrap_or(""));
        (out != s).then_some((out, counts))
    }
}

/// The text of a string or number, the values a removal can echo.
pub(super) fn scalar_text<'n>(node: &'n Node<'_>) -> Option<&'n str> {
    match node {
        Node::Str(s) => Some(s.as_str()),
        Node::Number(n) => Some(n),
        Node::Array(_) | Node::Object(_) | Node::Null | Node::Bool(_) => None,
    }
}

/// A value that stands for no datum: no letter or digit (`****`, `---`), one character
/// repeated (`xxxx`, `0000`), or a template or placeholder form (`<undefined>`, `{id}`,
/// `{{auto}}`, `${TOKEN}`, `%(name)s`, `:id`, `[redacted]`).
fn placeholder(value: &str) -> bool {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return true;
    };
    if !value.chars().any(char::is_alphanumeric) || chars.all(|c| c == first) {
        return true;
    }
    let wrapped = |open: char, close: char| value.starts_with(open) && value.ends_with(close);
    wrapped('<', '>')
        || wrapped('{', '}')
        || wrapped('[', ']')
        || value.starts_with('%')
        || value.starts_with("${")
        || (value.starts_with(':')
            && value[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Whether `s[start..end]` stands as a whole token: no word character (letter, digit, `_`)
/// glued to a word character at either end, and a number not continued by a decimal point,
/// a comma or a dash and more digits (`1234` is not in `123456`, `12.1234` or `1234-56`).
fn whole_token(s: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let value = s.get(start..end).unwrap_or("");
    let head = s.get(..start).unwrap_or("");
    let tail = s.get(end..).unwrap_or("");
    let (first, last) = (value.chars().next(), value.chars().next_back());
    let mut before = head.chars().rev();
    let (b1, b2) = (before.next(), before.next());
    let mut after = tail.chars();
    let (a1, a2) = (after.next(), after.next());
    let glued = |edge: Option<char>, n1: Option<char>, n2: Option<char>| {
        let Some(edge) = edge else {
            return false;
        };
        if word(edge) && n1.is_some_and(word) {
            return true;
        }
        edge.is_ascii_digit()
            && n1.is_some_and(|c| matches!(c, '.' | ',' | '-'))
            && n2.is_some_and(|c| c.is_ascii_digit())
    };
    !glued(first, b1, b2) && !glued(last, a1, a2)
}

#[cfg(test)]
mod tests {
    use super::{placeholder, whole_token, FOUND_ANYWHERE, NAME_DETECTORS};
    use crate::scrub::detectors::builtin::BUILTINS;

    fn token_at(s: &str, value: &str) -> bool {
        let start = s.find(value).expect("value in s");
        whole_token(s, start, start + value.len())
    }

    #[test]
    fn whole_tokens_only() {
        assert!(token_at("id 1234 seen", "1234"));
        assert!(token_at("1234", "1234"));
        assert!(token_at("(1234).", "1234"));
        assert!(!token_at("123456", "1234"));
        assert!(!token_at("x1234", "1234"));
        assert!(!token_at("1234_old", "1234"));
        assert!(!token_at("12.1234", "1234"));
        assert!(!token_at("1234.5", "1234"));
        assert!(!token_at("1234,56", "1234"));
        assert!(!token_at("1234-56", "1234"));
        assert!(token_at("1234-abc", "1234"));
        assert!(token_at("v. 1234.", "1234"));
        assert!(token_at("pw=hunter2-Secret!x", "hunter2-Secret!"));
        assert!(!token_at("xhunter2-Secret!", "hunter2-Secret!"));
        assert!(token_at("José, hi", "José"));
        assert!(!token_at("Joséé", "José"));
    }

    #[test]
    fn placeholders_are_not_values() {
        for p in [
            "****",
            "xxxx",
            "0000",
            "<undefined>",
            "{id}",
            "{{auto}}",
            "${TOKEN}",
            "%(name)s",
            ":user_id",
            "[redacted]",
            "----",
        ] {
            assert!(placeholder(p), "{p}");
        }
        for v in ["hunter2", "jdoe_1975", "8812", "Maria Gonzalez", "a:b1"] {
            assert!(!placeholder(v), "{v}");
        }
    }

    #[test]
    fn listed_detectors_exist() {
        for rule in FOUND_ANYWHERE.iter().chain(NAME_DETECTORS) {
            assert!(
                BUILTINS.iter().any(|b| b.rule == *rule),
                "{rule} is not a built-in rule"
            );
        }
    }
}
