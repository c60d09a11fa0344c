//! Echo: values found under name and id keys, removed wherever else they appear in the
//! same item.

use crate::json::Node;

use super::*;

impl Engine {
    pub(super) fn collect_echo(&self, class: KeyClass, value: &str, cx: &mut Cx) {
        if !class.echoes() || !self.echo_enabled {
            return;
        }
        let v = value.trim().trim_matches(['\'', '"']);
        let chars = v.chars().count();
        let ok = match class {
            KeyClass::Name | KeyClass::Address => {
                chars >= 3 && v.chars().any(char::is_alphabetic) && !self.is_label(v)
            }
            _ => chars >= 5 && v.bytes().any(|b| b.is_ascii_digit()),
        };
        if ok && chars <= 200 && cx.echo_seen.insert(Box::from(v)) {
            cx.echo.push((v.to_owned(), class));
        }
    }

    pub(super) fn echo_pass(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let mut matcher = EchoMatcher::new(cx.echo.iter().map(|(v, _)| v.as_str()));
        let labels: Vec<&str> = cx
            .echo
            .iter()
            .map(|(_, class)| {
                self.echo_label
                    .get(class)
                    .map_or("[Filtered]", String::as_str)
            })
            .collect();
        cx.path.clear();
        self.echo_walk(value, &mut matcher, &labels, cx);
    }

    pub(super) fn echo_walk(
        &self,
        value: &mut Node<'_>,
        matcher: &mut EchoMatcher,
        labels: &[&str],
        cx: &mut Cx,
    ) {
        match value {
            Node::Str(s) => {
                if self.is_label(s) {
                    return;
                }
                let mut out = String::new();
                let mut last = 0usize;
                let mut count = 0u32;
                for m in matcher.find_iter(s.as_str()) {
                    let before = s.get(..m.start).and_then(|t| t.chars().next_back());
                    let after = s.get(m.end..).and_then(|t| t.chars().next());
                    if before.is_some_and(char::is_alphanumeric)
                        || after.is_some_and(char::is_alphanumeric)
                    {
                        continue;
                    }
                    let Some(label) = labels.get(m.pattern) else {
                        continue;
                    };
                    out.push_str(s.get(last..m.start).unwrap_or(""));
                    out.push_str(label);
                    last = m.end;
                    count += 1;
                }
                if count > 0 {
                    out.push_str(s.get(last..).unwrap_or(""));
                    if out != s.as_str() {
                        s.set(out);
                        cx.record("echo", Method::Replace, count);
                    }
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.echo_walk(item, matcher, labels, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                for (k, item) in map.iter_mut() {
                    if self.is_schema_value(k, item, cx) {
                        continue;
                    }
                    let len = cx.push(k);
                    self.echo_walk(item, matcher, labels, cx);
                    cx.pop(len);
                }
            }
            _ => {}
        }
    }
}
