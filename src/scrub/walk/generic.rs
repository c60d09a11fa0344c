//! The generic walk: any value under any key, classified by its key (denylist, cookie,
//! query, SQL, body, person context) and otherwise scanned as text.

use crate::json::{Node, Object};

use super::*;
use crate::scrub::structured::sql_params;
use crate::scrub::structured::url::is_relative_url;

/// Rounds of scanning and judging a string whose context passes changed it.
pub(super) const MAX_JUDGE_ROUNDS: usize = 4;

impl Engine {
    /// [`Self::scrub_string_in`] repeated until the string reads the same (see
    /// [`until_stable`]): a redaction can change what kind of string it is (`/?token=' l'`
    /// loses its space and reads as a query).
    pub(crate) fn scrub_string_settled(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let (out, settled_text) = self.scrub_string_step(s, key, cx);
        let out = out?;
        // Free text already repeats until its output scans clean; when that output still
        // reads as free text, another round would only scan it again to learn nothing.
        if settled_text && self.reads_as_plain_text(&out) {
            return Some(out);
        }
        let again = until_stable(self, &out, cx, |t, cx| self.scrub_string_in(t, key, cx));
        Some(again.unwrap_or(out))
    }

    /// Whether [`Self::scrub_string_in`] would treat `s` as free text (not JSON, not a
    /// relative URL, not a form body, not too short, not a label). Errs towards `false`:
    /// a JSON-looking string counts as structured even if it would not parse.
    pub(super) fn reads_as_plain_text(&self, s: &str) -> bool {
        let structured = json_like(s.trim())
            || is_relative_url(s)
            || (s.contains('&') && query::looks_like_form(s));
        s.len() >= 4 && !self.is_label(s) && !structured
    }

    pub(crate) fn walk_value(&self, value: &mut Node<'_>, key: &str, cx: &mut Cx) {
        match value {
            Node::Str(s) if key == "monitor_slug" => {
                if let Some(new) = self.judge_monitor_slug(s, cx) {
                    s.set(new);
                }
            }
            Node::Str(s) => {
                if let Some(new) = self.scrub_string_settled(s, key, cx) {
                    s.set(new);
                }
                self.judge_in_context(s, key, cx);
            }
            Node::Number(n) => {
                if is_big_integer(n) || is_keyed_number(n, key) {
                    if let Some(new) = self.scrub_text(n, key, cx) {
                        *value = Node::string(new);
                    }
                }
            }
            other => self.walk_container(other, key, cx),
        }
    }

    /// A check-in's monitor slug, read as the slug Sentry makes of it (lower case, every run
    /// of other characters one `-`, as Relay normalizes it) and judged word by word
    /// ([`Self::judge_slug`]); written back in that form only when something in it was
    /// redacted. Its label words (`nightly-export-mrn`) are slug words, so the detectors,
    /// which would read `mrn` as context, never see the slug.
    fn judge_monitor_slug(&self, s: &str, cx: &mut Cx) -> Option<String> {
        let mut slug = String::with_capacity(s.len());
        for c in s.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        while slug.ends_with('-') {
            slug.pop();
        }
        self.judge_slug(&slug, cx)
    }

    /// The passes that judge a string's parts by what stands around them, after its own
    /// scan: delimited records, queries of URLs without a scheme, path segments, file
    /// names, a monitor's slug.
    pub(super) fn judge_in_context(&self, s: &mut Text<'_>, key: &str, cx: &mut Cx) {
        if let Some(new) = self.judge_string(s, key, cx) {
            s.set(new);
        }
    }

    /// [`Self::judge_in_context`] on a string of its own (a decoded query value); `None`
    /// if nothing changed. What a context pass writes is scanned and judged again, as the
    /// next scrub of the output would: a slug's label word (`patient-mrn-1sync`) reads as
    /// context to the detectors, a record's new labels make its other fields judged.
    pub(crate) fn judge_string(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let mut out = self.judge_string_once(s, key, cx)?;
        for _ in 1..MAX_JUDGE_ROUNDS {
            let scanned = self.scrub_string_settled(&out, key, cx);
            let judged = self.judge_string_once(scanned.as_deref().unwrap_or(&out), key, cx);
            match (scanned, judged) {
                (None, None) => break,
                (_, Some(next)) | (Some(next), None) => out = next,
            }
        }
        Some(out)
    }

    /// One round of [`Self::judge_string`].
    fn judge_string_once(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        let mut cur: Option<String> = None;
        if let Some(new) = self.judge_cluster_fields(s, cx) {
            cur = Some(new);
        }
        let t = cur.as_deref().unwrap_or(s);
        if t.contains('?') && t.contains('=') && t.len() < 8192 {
            if let Some(new) = self.scrub_schemeless_queries(t, key, cx) {
                cur = Some(new);
            }
        }
        let t = cur.as_deref().unwrap_or(s);
        if t.contains('/') && t.len() < 2048 {
            if let Some(new) = self.judge_path_segments(t, cx) {
                cur = Some(new);
            }
        }
        let t = cur.as_deref().unwrap_or(s);
        if t.len() < 4096 && t.contains('.') && t.contains(['_', '-']) {
            if let Some(new) = self.judge_file_names(t, cx) {
                cur = Some(new);
            }
        }
        cur
    }

    fn walk_container(&self, value: &mut Node<'_>, key: &str, cx: &mut Cx) {
        match value {
            Node::Array(items) => {
                if is_pair_list(items) && is_pair_key(key) {
                    self.pairs(items, false, cx, |eng, k, v, cx| {
                        eng.apply_key(k, v, false, cx)
                    });
                    return;
                }
                let mut phi = Vec::with_capacity(items.len());
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    let before = cx.report.redactions.len();
                    self.walk_value(item, key, cx);
                    phi.push(self.added_phi(cx, before));
                    cx.pop(len);
                }
                // Template parameters are judged with their placeholders' context.
                if key != "params" {
                    self.judge_cluster_items(items, &phi, cx);
                }
            }
            Node::Object(map) => {
                if cx.json_depth >= MAX_JSON_DEPTH {
                    return;
                }
                cx.json_depth += 1;
                self.walk_map(map, key, false, cx);
                cx.json_depth -= 1;
            }
            Node::Null | Node::Bool(_) | Node::Str(_) | Node::Number(_) => {}
        }
    }

    /// Walks an object. `person` says the object describes a person (so `name` is PII).
    pub(super) fn walk_map(&self, map: &mut Object<'_>, parent: &str, person: bool, cx: &mut Cx) {
        if self.is_fhir_resource(map) {
            self.fhir_resource(map, cx);
            return;
        }
        let bound = sql_params::redact_sibling_params(self, map, None, cx);
        let person = person || (map.contains_key("name") && self.person_context(map, parent, cx));
        let mut phi = Vec::with_capacity(map.len());
        let mut remove = Vec::new();
        for (idx, (key, child)) in map.iter_mut().enumerate() {
            let len = cx.push(key);
            let before = cx.report.redactions.len();
            // `{"subscriber": {"id_number": …}}` reads as `subscriber.id_number`: the
            // object says whose identity number it is.
            let owned;
            let key_read: &str =
                if self.person_compound_keys && !parent.is_empty() && is_bare_id_number(key) {
                    owned = format!("{parent}.{}", key.as_str());
                    &owned
                } else {
                    key
                };
            if self.apply_key(key_read, child, person, cx) == Outcome::Remove {
                remove.push(idx);
            }
            phi.push(self.added_phi(cx, before));
            cx.pop(len);
        }
        // A removed member that held PHI still counts towards the cluster.
        let removed_phi = remove
            .iter()
            .filter(|i| phi.get(**i).copied().unwrap_or(false))
            .count();
        if !remove.is_empty() {
            map.remove_indices(&remove);
            let mut i = 0;
            phi.retain(|_| {
                let keep = !remove.contains(&i);
                i += 1;
                keep
            });
        }
        if let Some(bound) = &bound {
            sql_params::redact_sibling_params(self, map, Some(bound), cx);
        }
        self.judge_cluster_members(map, &phi, removed_phi, cx);
    }

    /// Parameters bound to a statement, next to it: a span's `description` and `data`, a
    /// breadcrumb's `message` and `data`, a span v2 item's `name` and `attributes`. The
    /// statement is `obj[sql_key]`, or `db.statement` / `db.query.text` inside the data.
    ///
    /// Called before the members are walked with `earlier` `None`, and after with what that
    /// call returned: the scrubbed statement can bind more (see
    /// [`sql_params::redact_sibling_params`]).
    pub(super) fn bound_params(
        &self,
        obj: &mut Object<'_>,
        sql_key: &str,
        data_key: &str,
        earlier: Option<&sql_params::Classed>,
        cx: &mut Cx,
    ) -> Option<sql_params::Classed> {
        let Some(Node::Object(data)) = obj.get(data_key) else {
            return None;
        };
        let in_data = sql_params::SQL_KEYS.iter().find_map(|k| {
            let v = data.get(k)?;
            v.as_str().or_else(|| v.get("value").and_then(Node::as_str))
        });
        let own = obj.get(sql_key).and_then(Node::as_str);
        // Without a statement now, still `Some`: scrubbing may make one (the walker reads
        // the object again after its members are scrubbed).
        let Some(sql) = own
            .and_then(sql_params::statement)
            .or_else(|| in_data.and_then(sql_params::statement))
            .map(str::to_owned)
        else {
            return Some(sql_params::Classed::default());
        };
        let mut classed = None;
        for (key, data) in obj.iter_mut() {
            if key.as_str() == data_key {
                if let Node::Object(data) = data {
                    let len = cx.push(key);
                    classed = sql_params::redact_data_params(self, &sql, data, earlier, cx);
                    cx.pop(len);
                }
            }
        }
        classed
    }

    /// `[["name", value], …]` lists (tags, headers, cookies, query strings).
    pub(super) fn pairs<'a>(
        &self,
        pairs: &mut Vec<Node<'a>>,
        _person: bool,
        cx: &mut Cx,
        f: impl Fn(&Self, &str, &mut Node<'a>, &mut Cx) -> Outcome,
    ) {
        let mut remove = Vec::new();
        for (i, pair) in pairs.iter_mut().enumerate() {
            let len = cx.push_index(i);
            match pair {
                Node::Array(kv) if kv.len() == 2 => {
                    let (first, rest) = kv.split_at_mut(1);
                    let name = first.first().and_then(Node::as_str).unwrap_or("");
                    let l = cx.push("1");
                    if let Some(v) = rest.first_mut() {
                        if f(self, name, v, cx) == Outcome::Remove {
                            remove.push(i);
                        }
                    }
                    cx.pop(l);
                }
                other => self.walk_value(other, "", cx),
            }
            cx.pop(len);
        }
        for i in remove.into_iter().rev() {
            pairs.remove(i);
        }
    }

    pub(super) fn person_context(&self, map: &Object<'_>, parent: &str, cx: &mut Cx) -> bool {
        cx.tokens.split(parent);
        if PERSON_CONTEXT_WORDS.iter().any(|w| cx.tokens.contains(w)) {
            return true;
        }
        map.keys().any(|k| {
            self.key_class(k, cx)
                .is_some_and(|c| PHI_SIBLING.contains(&c))
        })
    }

    /// Classifies the keys SDKs send in almost every payload once, at compile time.
    pub(crate) fn seed_known_keys(&mut self, keys: &[&str]) {
        let mut cx = Cx::default();
        let mut table = KeyTable::with_capacity_and_hasher(keys.len(), KeyedBuild::default());
        for key in keys {
            table.insert(Box::<str>::from(*key), self.compute_key_info(key, &mut cx));
        }
        self.known_keys = KnownKeys {
            seeded: table.len(),
            table: arc_swap::ArcSwap::from_pointee(table),
        };
    }

    pub(super) fn key_info(&self, key: &str, cx: &mut Cx) -> KeyInfo {
        if let Some(info) = cx.known.get(key) {
            return *info;
        }
        if let Some(info) = cx.keys.get(key) {
            return *info;
        }
        let info = self.compute_key_info(key, cx);
        if cx.keys.len() < 10_000 {
            cx.keys.insert(key.to_owned(), info);
        }
        info
    }

    pub(super) fn compute_key_info(&self, key: &str, cx: &mut Cx) -> KeyInfo {
        // A "key" with blanks is a run of prose a parser took for a key (`a@b.co sn = 1` as
        // a query); scrubgate's own labels in it are no words of it, or the next scrub would
        // read `[email] sn` as an e-mail key. (`patient[name]` has no blank and keeps its
        // brackets.)
        let unlabelled;
        let words = if key.contains('[') && key.contains(char::is_whitespace) {
            unlabelled = self.without_labels(key);
            unlabelled.as_str()
        } else {
            key
        };
        cx.tokens.split(words);
        let safe = !self.safe.is_empty() && self.safe.find(&mut cx.tokens).is_some();
        let class = if safe {
            None
        } else {
            self.deny.find(&mut cx.tokens).or_else(|| {
                let compound = self.person_compound_keys;
                (compound && compound_name(&cx.tokens))
                    .then_some(KeyClass::Name)
                    .or_else(|| {
                        (compound && compound_member_id(&cx.tokens)).then_some(KeyClass::Insurance)
                    })
            })
        };
        let bare_name = !safe && cx.tokens.len() == 1 && cx.tokens.get(0) == "name";
        let schema = match self.structural.get(key) {
            Some(shape) => Some(*shape),
            // `sdk.version`, `os.kernel_version`, `sentry.sdk.version`: dotted versions
            // would read as IP addresses.
            None => (cx.tokens.last() == "version").then_some(Shape::Any),
        };
        let role = match key {
            "_meta" => Role::Meta,
            "cookie" | "cookies" | "Cookie" | "set-cookie" | "Set-Cookie" | "set_cookie" => {
                Role::Cookie
            }
            "query_string" | "url.query" | "http.query" | "query" | "querystring"
            | "QUERY_STRING" => Role::Query,
            "db.statement" | "db.query.text" | "db.sql" | "sql" => Role::Sql,
            _ => match class {
                Some(class) => Role::Class(class),
                None => match key {
                    "data" | "body" | "form" | "request_body" | "payload" => Role::Body,
                    _ => Role::Generic,
                },
            },
        };
        KeyInfo {
            role,
            class,
            bare_name,
            schema,
            scan_context: self.scanner.key_gives_context(key),
        }
    }

    /// Whether `value` under `key` is a schema field with its schema shape, and so is left
    /// unscanned.
    pub(super) fn is_schema_value(&self, key: &str, value: &Node<'_>, cx: &mut Cx) -> bool {
        let Some(shape) = self.key_info(key, cx).schema else {
            return false;
        };
        match value {
            Node::Str(s) => shape.fits(s),
            Node::Number(n) => shape.fits(n),
            Node::Null | Node::Bool(_) => true,
            Node::Array(_) | Node::Object(_) => shape == Shape::Any,
        }
    }

    pub(super) fn role(&self, key: &str, person: bool, cx: &mut Cx) -> Role {
        let info = self.key_info(key, cx);
        if person && info.bare_name && matches!(info.role, Role::Generic | Role::Body) {
            return Role::Class(KeyClass::Name);
        }
        info.role
    }

    pub(super) fn apply_key(
        &self,
        key: &str,
        child: &mut Node<'_>,
        person: bool,
        cx: &mut Cx,
    ) -> Outcome {
        if self.is_schema_value(key, child, cx) {
            return Outcome::Keep;
        }
        let role = self.role(key, person, cx);
        if let Role::Class(class) = role {
            if let Some(action) = self.class_actions.get(&class) {
                if action.method == Method::Remove {
                    if child.is_null() {
                        return Outcome::Keep;
                    }
                    if let Some(text) = scalar_text(child) {
                        self.collect_echo(EchoSource::Class(class), text, action, "", cx);
                    }
                    cx.record(&action.rule, Method::Remove, 1);
                    return Outcome::Remove;
                }
            }
        }
        self.apply_role(role, key, child, cx);
        Outcome::Keep
    }

    pub(super) fn apply_role(&self, role: Role, key: &str, child: &mut Node<'_>, cx: &mut Cx) {
        match (role, child) {
            (Role::Meta, child) => self.meta(child, cx),
            (Role::Class(class), child) => self.redact_whole(class, child, cx),
            (Role::Cookie, Node::Str(s)) => {
                if let Some(new) = cookie::scrub_cookies(self, s, cx) {
                    s.set(new);
                }
            }
            (Role::Cookie, node @ Node::Number(_)) => {
                // Read as the cookie header it stands for, as a second pass (which sees the
                // redacted string) would: anything else is not idempotent.
                let new = match &*node {
                    Node::Number(n) => cookie::scrub_cookies(self, n, cx),
                    _ => None,
                };
                if let Some(new) = new {
                    *node = Node::Str(Text::from(new));
                }
            }
            (Role::Cookie, Node::Array(items)) if !is_pair_list(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    if let Node::Str(s) = item {
                        if let Some(new) = cookie::scrub_cookies(self, s, cx) {
                            s.set(new);
                        }
                    }
                    cx.pop(len);
                }
            }
            (Role::Cookie, Node::Array(items)) => {
                self.pairs(items, false, cx, |eng, name, v, cx| {
                    eng.cookie_member(name, v, cx);
                    Outcome::Keep
                });
            }
            (Role::Cookie, Node::Object(map)) => {
                for (name, v) in map.iter_mut() {
                    let len = cx.push(name);
                    self.cookie_member(name, v, cx);
                    cx.pop(len);
                }
            }
            (Role::Query, Node::Str(s)) => {
                // `query` also names a database query (`execute(query, params)`). A label
                // can take a statement's keyword (`SELECTa@b.co' …` → `[email]? …`), and
                // the next scrub reads what is left as a query string: so it is read
                // again, as that scrub would, until it settles.
                for _ in 0..MAX_JUDGE_ROUNDS {
                    let new = if sql_params::statement(s).is_some() {
                        self.scrub_sql(s, key, cx)
                    } else {
                        query::scrub_query(self, s, key, cx)
                    };
                    match new {
                        Some(new) if new != s.as_str() => s.set(new),
                        _ => break,
                    }
                }
            }
            (Role::Sql, Node::Str(s)) => {
                if let Some(new) = self.scrub_sql(s, key, cx) {
                    s.set(new);
                }
            }
            (Role::Body, Node::Str(s)) => {
                // Judging can make a body a form (`7=08re9,[zip],53956 8,[zip]` loses its
                // only space to `[mrn]`), and the next scrub reads a form by its keys: so
                // the body is read again, as that scrub would, until it settles.
                for _ in 0..MAX_JUDGE_ROUNDS {
                    let new = until_stable(self, s, cx, |text, cx| {
                        if query::looks_like_form(text) {
                            query::scrub_query(self, text, key, cx)
                        } else {
                            self.scrub_string_in(text, key, cx)
                        }
                    });
                    if let Some(new) = new {
                        s.set(new);
                    }
                    if query::looks_like_form(s) {
                        break;
                    }
                    match self.judge_string(s, key, cx) {
                        Some(judged) if query::looks_like_form(&judged) => s.set(judged),
                        Some(judged) => {
                            s.set(judged);
                            break;
                        }
                        None => break,
                    }
                }
            }
            (_, child) => self.walk_value(child, key, cx),
        }
    }

    pub(super) fn cookie_member(&self, name: &str, v: &mut Node<'_>, cx: &mut Cx) {
        match v {
            Node::Str(s) => {
                if let Some(new) = self.scrub_cookie_value(name, s, cx) {
                    s.set(new);
                }
            }
            other => self.walk_value(other, name, cx),
        }
    }

    /// SQL: literals become `?`, then the value detectors run over what is left. A label
    /// can change how the statement lexes (`…[email].789` makes `.789` a number), so both
    /// steps repeat until neither changes anything, as a second scrub would.
    pub(super) fn scrub_sql(&self, s: &str, key: &str, cx: &mut Cx) -> Option<String> {
        // A statement in a Python repr (`'SELECT …'`, a frame variable): its quotes are not
        // a literal around the statement.
        if let Some(inner) = sql_params::statement(s).filter(|inner| inner.len() < s.trim().len()) {
            let at = (inner.as_ptr() as usize).saturating_sub(s.as_ptr() as usize);
            let new = self.scrub_sql(inner, key, cx)?;
            let mut out = String::with_capacity(s.len());
            out.push_str(s.get(..at).unwrap_or(""));
            out.push_str(&new);
            out.push_str(s.get(at + inner.len()..).unwrap_or(""));
            return Some(out);
        }
        let strip = self.rules.enabled(Structural::SqlLiteral);
        until_stable(self, s, cx, |text, cx| {
            let (stripped, count) = if strip {
                sql::strip_literals(text)
            } else {
                (text.to_owned(), 0)
            };
            if count > 0 {
                cx.record(Structural::SqlLiteral.name(), Method::Replace, count);
            }
            match self.scrub_text(&stripped, key, cx) {
                Some(new) => Some(new),
                None if count > 0 => Some(stripped),
                None => None,
            }
        })
    }
}

/// `billing.name`, `dependent[name]`, `insuredDisplayName`: a key that ends in `name`
/// after a word saying whose or which name it is
/// ([`crate::scrub::profile::names_whose_name`]).
fn compound_name(tokens: &Tokens) -> bool {
    let n = tokens.len();
    n >= 2
        && tokens.last() == "name"
        && (0..n - 1).any(|i| crate::scrub::profile::names_whose_name(tokens.get(i)))
}

impl Engine {
    /// `key` with every scrubgate label (`[email]`, `[name]`) replaced by a word no key
    /// rule holds, so the label neither names the key nor leaves it shorter than the text
    /// it replaced (`[email] sn` must not read as the key `sn`).
    fn without_labels(&self, key: &str) -> String {
        let mut out = String::with_capacity(key.len());
        let mut rest = key;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']').map(|c| open + c) else {
                break;
            };
            out.push_str(&rest[..open]);
            if self.is_label(&rest[open..=close]) {
                out.push_str(" scrubgatelabel ");
            } else {
                out.push_str(&rest[open..=close]);
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// A key that says "identity number" without saying whose (`id_number`, `idNo`).
fn is_bare_id_number(key: &str) -> bool {
    matches!(
        key,
        "id_number" | "idNumber" | "id_no" | "idNo" | "id_num" | "IdNumber" | "ID_NUMBER"
    )
}

/// `insured.id_number`, `dependent[id]`, `subscriberId`: an id after a word for the
/// person a health plan covers.
fn compound_member_id(tokens: &Tokens) -> bool {
    const OWNERS: &[&str] = &[
        "insured",
        "subscriber",
        "member",
        "dependent",
        "beneficiary",
        "policyholder",
        "guarantor",
        "billing",
    ];
    let n = tokens.len();
    let (id_at, id_number) = match (tokens.get(n.saturating_sub(2)), tokens.last()) {
        ("id", "number" | "no" | "num") => (n.saturating_sub(2), true),
        (_, "id") => (n.saturating_sub(1), false),
        _ => return false,
    };
    // `contact.id_number`, `holderIdNumber`: an identity number of any person; a bare
    // `contact.id` is a record's id.
    id_at >= 1
        && (0..id_at).any(|i| {
            let word = tokens.get(i);
            OWNERS.contains(&word) || (id_number && crate::scrub::profile::names_whose_name(word))
        })
}
