//! Schema knowledge per payload kind: where each kind keeps user data (the event root,
//! `user`, `request`, headers, breadcrumbs, spans, typed attributes, sessions, the envelope
//! header) and which of its fields are the SDK's own.

use crate::json::{Node, Object};

use super::*;

impl Engine {
    pub(super) fn event_root(&self, map: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (key, child)) in map.iter_mut().enumerate() {
            let len = cx.push(key);
            let outcome = match key.as_str() {
                "user" => {
                    if let Node::Object(user) = child {
                        self.user(user, cx);
                    }
                    Outcome::Keep
                }
                "request" => {
                    if let Node::Object(request) = child {
                        self.request(request, cx);
                    } else {
                        self.walk_value(child, key, cx);
                    }
                    Outcome::Keep
                }
                "breadcrumbs" => {
                    self.breadcrumbs(child, cx);
                    Outcome::Keep
                }
                "spans" => {
                    if let Node::Array(spans) = child {
                        for (i, span) in spans.iter_mut().enumerate() {
                            let l = cx.push_index(i);
                            if let Node::Object(span) = span {
                                self.span(span, cx);
                            }
                            cx.pop(l);
                        }
                    }
                    Outcome::Keep
                }
                "sdk" => {
                    // The SDK block is the SDK's own, but Relay reads `sdk.client_ip` as the
                    // client's address: it goes wherever client IPs go.
                    if let Node::Object(sdk) = child {
                        let mut remove = Vec::new();
                        for (i, (k, v)) in sdk.iter_mut().enumerate() {
                            if k.as_str() == "client_ip" {
                                let l = cx.push("client_ip");
                                if self.rule_field(Structural::ClientIp, v, cx) == Outcome::Remove {
                                    remove.push(i);
                                }
                                cx.pop(l);
                            }
                        }
                        sdk.remove_indices(&remove);
                    }
                    Outcome::Keep
                }
                "_meta" => {
                    self.meta(child, cx);
                    Outcome::Keep
                }
                "urls" => {
                    self.walk_value(child, key, cx);
                    Outcome::Keep
                }
                "logentry" | "message" => {
                    if let Node::Object(entry) = child {
                        self.logentry(entry, cx);
                    }
                    self.apply_key(key, child, false, cx)
                }
                _ => self.apply_key(key, child, false, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        map.remove_indices(&remove);
        self.never_infer_ip(map, cx);
    }

    /// `_meta` is where SDKs annotate what they trimmed (sentry-python sends `len` and `rem`
    /// remarks for cut strings) and where Relay keeps original values (`val`). Its keys
    /// mirror the event's field names, so key rules would misfire on them; instead every
    /// original value goes (`meta_value` rule) and every other string is scanned as text,
    /// so nothing an SDK puts here reaches Sentry unscrubbed.
    pub(super) fn meta(&self, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Str(s) => {
                if let Some(new) = self.scrub_text(s, "", cx) {
                    s.set(new);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.meta(item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(map) => {
                if cx.json_depth >= MAX_JSON_DEPTH {
                    return;
                }
                cx.json_depth += 1;
                visit_members(map, cx, |key, child, cx| {
                    if key == "val" {
                        self.rule_field(Structural::MetaValue, child, cx)
                    } else {
                        self.meta(child, cx);
                        Outcome::Keep
                    }
                });
                cx.json_depth -= 1;
            }
            Node::Number(_) | Node::Null | Node::Bool(_) => {}
        }
    }

    /// Asks Sentry not to infer the client IP from the connection (which is ours anyway).
    pub(super) fn never_infer_ip(&self, map: &mut Object<'_>, cx: &mut Cx) {
        if !self.rules.enabled(Structural::ClientIp) {
            return;
        }
        let Some(sdk) = map.get_mut("sdk").and_then(Node::as_object_mut) else {
            return;
        };
        if !sdk.contains_key("settings") {
            sdk.push("settings", Node::Object(Object::new()));
        }
        if let Some(settings) = sdk.get_mut("settings").and_then(Node::as_object_mut) {
            if settings.get("infer_ip").and_then(Node::as_str) != Some("never") {
                settings.insert("infer_ip", Node::string("never"));
                let len = cx.push("sdk.settings.infer_ip");
                cx.record("client_ip", Method::Replace, 1);
                cx.pop(len);
            }
        }
    }

    pub(super) fn user(&self, user: &mut Object<'_>, cx: &mut Cx) {
        visit_members(user, cx, |key, child, cx| match key {
            "id" => self.rule_field(Structural::UserId, child, cx),
            "email" => self.rule_field(Structural::UserEmail, child, cx),
            "username" => self.rule_field(Structural::UserUsername, child, cx),
            "name" => self.rule_field(Structural::UserName, child, cx),
            "ip_address" => self.rule_field(Structural::ClientIp, child, cx),
            "geo" => self.rule_field(Structural::UserGeo, child, cx),
            _ => self.apply_key(key, child, true, cx),
        });
    }

    pub(super) fn request(&self, request: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in request.iter_mut() {
            let len = cx.push(key);
            match key.as_str() {
                "headers" => self.headers(child, cx),
                "cookies" => self.apply_role(Role::Cookie, key, child, cx),
                "query_string" => self.apply_role(Role::Query, key, child, cx),
                "data" => self.apply_role(Role::Body, key, child, cx),
                "env" => {
                    if let Node::Object(env) = child {
                        let mut remove = Vec::new();
                        for (idx, (k, v)) in env.iter_mut().enumerate() {
                            let l = cx.push(k);
                            let outcome = match k.as_str() {
                                "REMOTE_ADDR"
                                | "REMOTE_HOST"
                                | "HTTP_X_FORWARDED_FOR"
                                | "HTTP_X_REAL_IP"
                                | "HTTP_CLIENT_IP" => self.rule_field(Structural::ClientIp, v, cx),
                                _ => self.apply_key(k, v, false, cx),
                            };
                            if outcome == Outcome::Remove {
                                remove.push(idx);
                            }
                            cx.pop(l);
                        }
                        env.remove_indices(&remove);
                    } else {
                        self.walk_value(child, key, cx);
                    }
                }
                "url" | "method" | "fragment" => self.walk_value(child, key, cx),
                _ => {
                    // apply_key on a request member never removes (no Remove-method
                    // class applies to these names by default); keep it generic.
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    /// `request.headers` as an object or a list of `[name, value]` pairs.
    pub(super) fn headers(&self, headers: &mut Node<'_>, cx: &mut Cx) {
        match headers {
            Node::Object(map) => {
                let mut remove = Vec::new();
                for (idx, (name, value)) in map.iter_mut().enumerate() {
                    let len = cx.push(name);
                    if self.header(name, value, cx) == Outcome::Remove {
                        remove.push(idx);
                    }
                    cx.pop(len);
                }
                map.remove_indices(&remove);
            }
            Node::Array(pairs) => self.pairs(pairs, false, cx, |eng, name, value, cx| {
                eng.header(name, value, cx)
            }),
            _ => self.walk_value(headers, "headers", cx),
        }
    }

    pub(super) fn header(&self, name: &str, value: &mut Node<'_>, cx: &mut Cx) -> Outcome {
        let lower = name.to_ascii_lowercase();
        let lower = lower.replace('_', "-");
        if IP_HEADERS.contains(&lower.as_str()) {
            return self.rule_field(Structural::ClientIp, value, cx);
        }
        match lower.as_str() {
            "cookie" | "set-cookie" => {
                self.apply_role(Role::Cookie, name, value, cx);
                Outcome::Keep
            }
            "referer" | "referrer" | "origin" | "location" | "user-agent" => {
                self.walk_value(value, name, cx);
                Outcome::Keep
            }
            _ => self.apply_key(name, value, false, cx),
        }
    }

    pub(super) fn breadcrumbs(&self, crumbs: &mut Node<'_>, cx: &mut Cx) {
        let list = match crumbs {
            Node::Object(map) => {
                if !matches!(map.get("values"), Some(Node::Array(_))) {
                    self.walk_value(crumbs, "breadcrumbs", cx);
                    return;
                }
                // Every `values` member: a duplicate key must not hide a list (or anything
                // else) from the scrubber; what a reader sees is the last one.
                for (key, values) in map.iter_mut() {
                    if key.as_str() != "values" {
                        continue;
                    }
                    let len = cx.push("values");
                    match values {
                        Node::Array(list) => self.crumb_list(list, cx),
                        other => self.walk_value(other, "values", cx),
                    }
                    cx.pop(len);
                }
                return;
            }
            Node::Array(list) => list,
            _ => return,
        };
        self.crumb_list(list, cx);
    }

    pub(super) fn crumb_list(&self, list: &mut [Node<'_>], cx: &mut Cx) {
        for (i, crumb) in list.iter_mut().enumerate() {
            let len = cx.push_index(i);
            if let Node::Object(crumb) = crumb {
                let bound = self.bound_params(crumb, "message", "data", None, cx);
                let category = crumb.get("category").and_then(Node::as_str).unwrap_or("");
                let kind = crumb.get("type").and_then(Node::as_str).unwrap_or("");
                let is_sql = matches!(category, "query" | "sql" | "db")
                    || category.starts_with("db.")
                    || kind == "query";
                for (key, child) in crumb.iter_mut() {
                    let l = cx.push(key);
                    if key == "message" {
                        let role = if is_sql { Role::Sql } else { Role::Generic };
                        self.apply_role(role, key, child, cx);
                    } else if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                    cx.pop(l);
                }
                if let Some(bound) = &bound {
                    self.bound_params(crumb, "message", "data", Some(bound), cx);
                }
            } else {
                self.walk_value(crumb, "breadcrumbs", cx);
            }
            cx.pop(len);
        }
    }

    /// A span's description or a span item's name: a statement when the span is a database
    /// one or the text reads as SQL, free text otherwise. Scrubbing can end the reading as
    /// SQL (`[email]` over `SELECTs@…`), and the next scrub of the output would then read
    /// the rest as free text: so it is read again, as that scrub would, while the reading
    /// changes.
    fn maybe_sql(&self, is_db: bool, key: &str, child: &mut Node<'_>, cx: &mut Cx) {
        let reads_as_sql =
            |child: &Node<'_>| is_db || child.as_str().is_some_and(sql::looks_like_sql);
        let mut sql_like = reads_as_sql(child);
        for _ in 0..generic::MAX_JUDGE_ROUNDS {
            let role = if sql_like { Role::Sql } else { Role::Generic };
            self.apply_role(role, key, child, cx);
            let now = reads_as_sql(child);
            if now == sql_like {
                break;
            }
            sql_like = now;
        }
    }

    /// A transaction's span or a legacy standalone span.
    pub(super) fn span(&self, span: &mut Object<'_>, cx: &mut Cx) {
        let is_db = span
            .get("op")
            .and_then(Node::as_str)
            .is_some_and(|op| op.starts_with("db"));
        let bound = self.bound_params(span, "description", "data", None, cx);
        visit_members(span, cx, |key, child, cx| {
            if key == "description" {
                self.maybe_sql(is_db, key, child, cx);
                Outcome::Keep
            } else {
                self.apply_key(key, child, false, cx)
            }
        });
        if let Some(bound) = &bound {
            self.bound_params(span, "description", "data", Some(bound), cx);
        }
    }

    /// `{"version":…, "ingest_settings":…, "items":[…]}` of logs, spans v2, trace metrics.
    pub(super) fn container(&self, map: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("items", Node::Array(items)) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        let l = cx.push_index(i);
                        match item {
                            Node::Object(item) => self.container_item(item, cx),
                            other => self.walk_value(other, "items", cx),
                        }
                        cx.pop(l);
                    }
                }
                ("ingest_settings", Node::Object(settings)) => {
                    if self.rules.enabled(Structural::ClientIp) {
                        for k in ["infer_ip", "infer_user_agent"] {
                            if let Some(v) = settings.get_mut(k) {
                                if v.as_str() != Some("never") {
                                    *v = Node::string("never");
                                    let l = cx.push(k);
                                    cx.record("client_meta", Method::Replace, 1);
                                    cx.pop(l);
                                }
                            }
                        }
                    }
                }
                ("version", _) => {}
                (_, child) => {
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    pub(super) fn container_item(&self, item: &mut Object<'_>, cx: &mut Cx) {
        let is_db = item
            .get("attributes")
            .and_then(|a| a.get("sentry.op"))
            .and_then(|op| op.get("value"))
            .and_then(Node::as_str)
            .is_some_and(|op| op.starts_with("db"));
        self.log_template(item, cx);
        let bound = self.bound_params(item, "name", "attributes", None, cx);
        visit_members(item, cx, |key, child, cx| match (key, child) {
            ("attributes", Node::Object(attrs)) => {
                self.attributes(attrs, cx);
                Outcome::Keep
            }
            ("name", child) => {
                self.maybe_sql(is_db, key, child, cx);
                Outcome::Keep
            }
            ("body", child) => {
                self.walk_value(child, key, cx);
                Outcome::Keep
            }
            (_, child) => self.apply_key(key, child, false, cx),
        });
        if let Some(bound) = &bound {
            self.bound_params(item, "name", "attributes", Some(bound), cx);
        }
    }

    /// Typed attributes: `{"name": {"value": …, "type": …}}`. The attribute name is the key.
    pub(super) fn attributes(&self, attrs: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (name, attr)) in attrs.iter_mut().enumerate() {
            let len = cx.push(name);
            let outcome = match attr {
                Node::Object(obj) if obj.contains_key("value") => {
                    // Every `value` member (duplicates included); one `Remove` removes the
                    // attribute.
                    let mut outcome = Outcome::Keep;
                    for (key, target) in obj.iter_mut() {
                        if key.as_str() != "value" {
                            continue;
                        }
                        let l2 = cx.push("value");
                        if self.attribute(name, target, cx) == Outcome::Remove {
                            outcome = Outcome::Remove;
                        }
                        cx.pop(l2);
                    }
                    // A number replaced by a label is a string now: the attribute keeps
                    // saying what it holds (`{"value": "[phone]", "type": "string"}`).
                    let now_text = obj
                        .iter()
                        .any(|(k, v)| k.as_str() == "value" && matches!(v, Node::Str(_)));
                    if now_text {
                        for (k, v) in obj.iter_mut() {
                            if k.as_str() == "type" && v.as_str() != Some("string") {
                                *v = Node::string("string".to_owned());
                            }
                        }
                    }
                    outcome
                }
                other => self.attribute(name, other, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        attrs.remove_indices(&remove);
    }

    /// One typed attribute's value, by the attribute's name.
    pub(super) fn attribute(&self, name: &str, target: &mut Node<'_>, cx: &mut Cx) -> Outcome {
        match name {
            "user.ip_address" | "client.address" => {
                self.rule_field(Structural::ClientIp, target, cx)
            }
            "user.id" => self.rule_field(Structural::UserId, target, cx),
            "user.email" => self.rule_field(Structural::UserEmail, target, cx),
            "user.name" | "user.username" => self.rule_field(Structural::UserUsername, target, cx),
            "user.geo.city"
            | "user.geo.region"
            | "user.geo.subdivision"
            | "user.geo.country_code" => self.rule_field(Structural::UserGeo, target, cx),
            "url.query" | "http.query" => {
                self.apply_role(Role::Query, name, target, cx);
                Outcome::Keep
            }
            "db.query.text" | "db.statement" => {
                self.apply_role(Role::Sql, name, target, cx);
                Outcome::Keep
            }
            "http.request.body.data" | "http.response.body.data" => {
                self.apply_role(Role::Body, name, target, cx);
                Outcome::Keep
            }
            n => {
                if let Some(header) = n
                    .strip_prefix("http.request.header.")
                    .or_else(|| n.strip_prefix("http.response.header."))
                {
                    self.header(header, target, cx)
                } else {
                    self.apply_key(n, target, false, cx)
                }
            }
        }
    }

    pub(super) fn session(&self, map: &mut Object<'_>, cx: &mut Cx) {
        visit_members(map, cx, |key, child, cx| match (key, child) {
            ("did", child) => self.rule_field(Structural::SessionDid, child, cx),
            ("attrs", Node::Object(attrs)) => {
                self.session_attrs(attrs, cx);
                Outcome::Keep
            }
            (_, child) => self.apply_key(key, child, false, cx),
        });
    }

    pub(super) fn session_attrs(&self, attrs: &mut Object<'_>, cx: &mut Cx) {
        visit_members(attrs, cx, |key, child, cx| match key {
            "ip_address" => self.rule_field(Structural::ClientIp, child, cx),
            "user_agent" => self.rule_field(Structural::ClientMeta, child, cx),
            _ => self.apply_key(key, child, false, cx),
        });
    }

    pub(super) fn sessions(&self, map: &mut Object<'_>, cx: &mut Cx) {
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            match (key.as_str(), child) {
                ("attrs", Node::Object(attrs)) => self.session_attrs(attrs, cx),
                ("aggregates", Node::Array(aggs)) => {
                    for (i, agg) in aggs.iter_mut().enumerate() {
                        let l = cx.push_index(i);
                        if let Node::Object(agg) = agg {
                            self.session(agg, cx);
                        }
                        cx.pop(l);
                    }
                }
                (_, child) => {
                    if self.apply_key(key, child, false, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            }
            cx.pop(len);
        }
    }

    pub(super) fn envelope_header(&self, map: &mut Object<'_>, cx: &mut Cx) {
        let mut remove = Vec::new();
        for (idx, (key, child)) in map.iter_mut().enumerate() {
            let len = cx.push(key);
            let outcome = match (key.as_str(), child) {
                ("trace", Node::Object(trace)) => {
                    let mut drop = Vec::new();
                    for (idx, (k, v)) in trace.iter_mut().enumerate() {
                        let l = cx.push(k);
                        let o = match k.as_str() {
                            "user_id" => self.rule_field(Structural::UserId, v, cx),
                            "user_segment" => self.rule_field(Structural::ClientMeta, v, cx),
                            _ => self.apply_key(k, v, false, cx),
                        };
                        if o == Outcome::Remove {
                            drop.push(idx);
                        }
                        cx.pop(l);
                    }
                    trace.remove_indices(&drop);
                    Outcome::Keep
                }
                ("unreal_user_id", child) => self.rule_field(Structural::UserId, child, cx),
                ("dsn" | "sdk", _) => Outcome::Keep,
                (_, child) => self.apply_key(key, child, false, cx),
            };
            if outcome == Outcome::Remove {
                remove.push(idx);
            }
            cx.pop(len);
        }
        map.remove_indices(&remove);
    }
}
