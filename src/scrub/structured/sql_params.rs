//! SQL with bound parameters: `INSERT INTO patients (name, ssn, dob) VALUES (%s, %s, %s)`
//! sends no literal to strip, and the values travel next to it, in a frame variable
//! (`params`, `args`, `parameters`: the locals of `cursor.execute(sql, params)`), a span's or
//! a breadcrumb's data (`db.params`, `db.sql.bindings`, `db.query.parameter.<n>`). Each
//! placeholder is mapped to its column (the column list of an `INSERT`, `col = ?` in `SET`
//! and `WHERE`, `col IN (?, ?)`, `col BETWEEN ? AND ?`, `lower(col) LIKE ?`), and each
//! parameter bound to a sensitive column is redacted as a JSON value under that column's
//! name would be. A plain `name` column is a person's name in a table named for people
//! (`patients`, `users`) or next to a PHI column, as `name` is in a JSON object.
//!
//! Placeholders: `?` and `%s` count from the left; `$1`, `?1` and `:1` are numbered;
//! `:name`, `@name` and `%(name)s` are named. Parameters: a list (or a list of lists, from
//! `executemany`), an object keyed by name or by position, or a Python repr of a tuple or
//! list in a string (`"('Jane Doe', '536-22-8471')"`).

use std::collections::{HashMap, HashSet};

use crate::json::{Node, Object};
use crate::scrub::keys::KeyClass;
use crate::scrub::walk::{Cx, Engine};

/// A placeholder: by position (from 0) or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    Pos(usize),
    Named(String),
}

/// A placeholder and the column its value goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    pub(crate) slot: Slot,
    pub(crate) column: String,
}

/// What a statement binds: placeholders to columns, and the tables it names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Bindings {
    pub(crate) bound: Vec<Bound>,
    pub(crate) tables: Vec<String>,
    /// How many positional parameters the statement takes (the highest position plus one).
    /// A parameter list of another length is not bound by position: after scrubbing, a
    /// literal replaced by `?` would count as a placeholder and shift every binding after it.
    pub(crate) positional: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An identifier or keyword (quoted identifiers without their quotes).
    Ident(String),
    Slot(Slot),
    /// A comparison: `=`, `<>`, `!=`, `<`, `>`, `<=`, `>=`.
    Cmp,
    Open,
    Close,
    Comma,
    Dot,
    /// A literal, an operator, anything else.
    Other,
}

/// Keys whose string value is a SQL statement, where parameters may sit next to it.
pub(crate) const SQL_KEYS: &[&str] = &[
    "sql",
    "query",
    "statement",
    "stmt",
    "operation",
    "raw_sql",
    "sql_query",
    "db.statement",
    "db.query.text",
    "db.sql",
    // node-postgres' query config: `{text, values}`.
    "text",
];

/// Keys whose value holds the parameters bound to a statement next to it.
pub(crate) const PARAM_KEYS: &[&str] = &[
    "params",
    "parameters",
    "args",
    "vars",
    "values",
    "bindings",
    "binds",
    "bind_params",
    "sql_params",
    "query_params",
    "db.params",
    "db.sql.bindings",
    "db.query.parameters",
];

/// Reads the placeholders and the columns they are bound to.
pub(crate) fn bindings(sql: &str) -> Bindings {
    let toks = lex(sql);
    let mut out = Bindings {
        positional: toks
            .iter()
            .filter_map(|t| match t {
                Tok::Slot(Slot::Pos(n)) => n.checked_add(1),
                _ => None,
            })
            .max()
            .unwrap_or(0),
        ..Bindings::default()
    };
    for (i, t) in toks.iter().enumerate() {
        if let Tok::Ident(w) = t {
            if ["FROM", "INTO", "UPDATE", "JOIN"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
            {
                if let Some(table) = qualified_name_at(&toks, i + 1) {
                    out.tables.push(table);
                }
            }
        }
    }
    insert_columns(&toks, &mut out.bound);
    let inserted: HashSet<Slot> = out.bound.iter().map(|b| b.slot.clone()).collect();
    // The column of the `IN (…)` / `= ANY(…)` list being read, and its depth.
    let mut list: Option<(String, usize)> = None;
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => {
                depth += 1;
                if let Some(column) = list_column(&toks, i) {
                    list = Some((column, depth));
                }
                continue;
            }
            Tok::Close => {
                if list.as_ref().is_some_and(|(_, d)| *d == depth) {
                    list = None;
                }
                depth = depth.saturating_sub(1);
                continue;
            }
            _ => {}
        }
        let Tok::Slot(slot) = t else { continue };
        if inserted.contains(slot) {
            continue;
        }
        let in_list = list
            .as_ref()
            .filter(|(_, d)| *d == depth)
            .filter(|_| matches!(toks.get(i.wrapping_sub(1)), Some(Tok::Open | Tok::Comma)))
            .map(|(c, _)| c.clone());
        if let Some(column) = in_list.or_else(|| compared_column(&toks, i)) {
            out.bound.push(Bound {
                slot: slot.clone(),
                column,
            });
        }
    }
    out
}

/// The column of a list opening at `open`: `col IN (`, `col NOT IN (`, `col = ANY(`.
fn list_column(toks: &[Tok], open: usize) -> Option<String> {
    let kw = open.checked_sub(1)?;
    if is_kw(toks.get(kw), "IN") {
        let col = if is_kw(toks.get(kw.checked_sub(1)?), "NOT") {
            kw.checked_sub(2)?
        } else {
            kw - 1
        };
        return column_ending_at(toks, col);
    }
    if is_kw(toks.get(kw), "ANY") && toks.get(kw.checked_sub(1)?) == Some(&Tok::Cmp) {
        return column_ending_at(toks, kw.checked_sub(2)?);
    }
    None
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
}

/// SQL words that are never a column.
fn is_keyword(w: &str) -> bool {
    [
        "AND",
        "OR",
        "NOT",
        "WHERE",
        "SET",
        "ON",
        "SELECT",
        "FROM",
        "VALUES",
        "IN",
        "LIKE",
        "ILIKE",
        "BETWEEN",
        "IS",
        "NULL",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "AS",
        "BY",
        "HAVING",
        "LIMIT",
        "OFFSET",
        "ANY",
        "ALL",
        "RETURNING",
    ]
    .iter()
    .any(|k| w.eq_ignore_ascii_case(k))
}

/// `schema.table` at `i`: the last part.
fn qualified_name_at(toks: &[Tok], mut i: usize) -> Option<String> {
    let mut name = None;
    while let Some(Tok::Ident(w)) = toks.get(i) {
        if is_keyword(w) {
            break;
        }
        name = Some(w.clone());
        if toks.get(i + 1) != Some(&Tok::Dot) {
            break;
        }
        i += 2;
    }
    name
}

/// `INSERT INTO t (a, b) VALUES (?, ?), (?, ?)`: each placeholder alone in a value list
/// goes to the column at its position.
fn insert_columns(toks: &[Tok], bound: &mut Vec<Bound>) {
    let Some(start) = toks.iter().position(|t| {
        matches!(t, Tok::Ident(w) if ["INSERT", "REPLACE", "UPSERT"].iter().any(|k| w.eq_ignore_ascii_case(k)))
    }) else {
        return;
    };
    let Some(open) = toks
        .iter()
        .skip(start)
        .position(|t| *t == Tok::Open)
        .map(|p| p + start)
    else {
        return;
    };
    let mut columns = Vec::new();
    let mut i = open + 1;
    loop {
        match (toks.get(i), toks.get(i + 1)) {
            (Some(Tok::Ident(c)), Some(Tok::Comma)) => columns.push(c.clone()),
            (Some(Tok::Ident(c)), Some(Tok::Close)) => {
                columns.push(c.clone());
                i += 2;
                break;
            }
            _ => return,
        }
        i += 2;
    }
    if !(is_kw(toks.get(i), "VALUES") || is_kw(toks.get(i), "VALUE")) {
        return;
    }
    i += 1;
    while toks.get(i) == Some(&Tok::Open) {
        i += 1;
        let mut col = 0usize;
        let mut depth = 0usize;
        let mut lone: Option<Slot> = None;
        let mut parts = 0usize;
        while let Some(t) = toks.get(i) {
            match t {
                Tok::Open => depth += 1,
                Tok::Close if depth == 0 => break,
                Tok::Close => depth -= 1,
                Tok::Comma if depth == 0 => {
                    push_lone(&mut lone, parts, columns.get(col), bound);
                    col += 1;
                    parts = 0;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if let Tok::Slot(s) = t {
                lone = Some(s.clone());
            }
            parts += 1;
            i += 1;
        }
        push_lone(&mut lone, parts, columns.get(col), bound);
        i += 1;
        if toks.get(i) == Some(&Tok::Comma) {
            i += 1;
        }
    }
}

fn push_lone(
    lone: &mut Option<Slot>,
    parts: usize,
    column: Option<&String>,
    bound: &mut Vec<Bound>,
) {
    if let (Some(slot), 1, Some(column)) = (lone.take(), parts, column) {
        bound.push(Bound {
            slot,
            column: column.clone(),
        });
    }
    *lone = None;
}

/// The column a placeholder at `i` is compared with: `col = ?`, `col LIKE ?`,
/// `col BETWEEN ? AND ?`, `lower(col) = ?` (lists are read by [`bindings`]).
fn compared_column(toks: &[Tok], i: usize) -> Option<String> {
    let before = |k: usize| i.checked_sub(k).and_then(|j| toks.get(j));
    match before(1)? {
        Tok::Cmp => column_ending_at(toks, i.checked_sub(2)?),
        Tok::Ident(w)
            if ["LIKE", "ILIKE", "BETWEEN"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)) =>
        {
            column_ending_at(toks, i.checked_sub(2)?)
        }
        Tok::Ident(w) if w.eq_ignore_ascii_case("AND") => {
            // `col BETWEEN ? AND ?`
            if matches!(before(2), Some(Tok::Slot(_))) && is_kw(before(3), "BETWEEN") {
                column_ending_at(toks, i.checked_sub(4)?)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The column whose last token is at `j`: `col`, `t.col`, or the one column inside a
/// function call (`lower(t.col)`).
fn column_ending_at(toks: &[Tok], j: usize) -> Option<String> {
    match toks.get(j)? {
        Tok::Ident(w) if !is_keyword(w) => Some(w.clone()),
        Tok::Close => {
            let mut k = j.checked_sub(1)?;
            let col = match toks.get(k)? {
                Tok::Ident(w) if !is_keyword(w) => w.clone(),
                _ => return None,
            };
            while k >= 2 && toks.get(k - 1) == Some(&Tok::Dot) {
                k -= 2;
            }
            let open = k.checked_sub(1)?;
            (toks.get(open) == Some(&Tok::Open)
                && matches!(toks.get(open.checked_sub(1)?), Some(Tok::Ident(_))))
            .then_some(col)
        }
        _ => None,
    }
}

/// Tokens of a statement: identifiers, placeholders, and the punctuation the patterns above
/// read; literals and comments are skipped.
fn lex(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut toks = Vec::new();
    let mut next_pos = 0usize;
    // A driver takes one style: with `%s` or `%(name)s` in the statement, a bare `?` is a
    // literal scrubbing replaced (or an operator), not a placeholder.
    let mut questions: Vec<usize> = Vec::new();
    let mut format_style = false;
    let mut i = 0usize;
    let ident_end = |mut j: usize| {
        while b
            .get(j)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
        {
            j += 1;
        }
        j
    };
    let digits_end = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let number = |from: usize, to: usize| -> Option<usize> {
        sql.get(from..to)?.parse::<usize>().ok()?.checked_sub(1)
    };
    while let Some(&c) = b.get(i) {
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while b.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b.get(i) == Some(&b'*') && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                i += 1;
                while let Some(&c) = b.get(i) {
                    if c == b'\\' {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if c == b'\'' {
                        if b.get(i) == Some(&b'\'') {
                            i += 1;
                            continue;
                        }
                        break;
                    }
                }
                toks.push(Tok::Other);
            }
            b'"' | b'`' => {
                let start = i + 1;
                let end =
                    memchr::memchr(c, b.get(start..).unwrap_or(&[])).map_or(b.len(), |e| start + e);
                toks.push(Tok::Ident(sql.get(start..end).unwrap_or("").to_owned()));
                i = end + 1;
            }
            b'?' => {
                let end = digits_end(i + 1);
                if end > i + 1 {
                    if let Some(n) = number(i + 1, end) {
                        toks.push(Tok::Slot(Slot::Pos(n)));
                    }
                } else {
                    questions.push(toks.len());
                    toks.push(Tok::Slot(Slot::Pos(next_pos)));
                    next_pos += 1;
                }
                i = end;
            }
            b'%' if b.get(i + 1) == Some(&b's') => {
                format_style = true;
                toks.push(Tok::Slot(Slot::Pos(next_pos)));
                next_pos += 1;
                i += 2;
            }
            b'%' if b.get(i + 1) == Some(&b'(') => {
                format_style = true;
                let close =
                    memchr::memchr(b')', b.get(i..).unwrap_or(&[])).map_or(b.len(), |e| i + e);
                let name = sql.get(i + 2..close).unwrap_or("").to_owned();
                toks.push(Tok::Slot(Slot::Named(name)));
                i = close + 2;
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let end = digits_end(i + 1);
                if let Some(n) = number(i + 1, end) {
                    toks.push(Tok::Slot(Slot::Pos(n)));
                }
                i = end;
            }
            b':' | b'@' => {
                if b.get(i + 1) == Some(&c) {
                    // `::type` casts, `@@system` variables.
                    i += 2;
                    i = ident_end(i);
                    toks.push(Tok::Other);
                    continue;
                }
                let end = ident_end(i + 1);
                if end > i + 1 && digits_end(i + 1) == end && c == b':' {
                    if let Some(n) = number(i + 1, end) {
                        toks.push(Tok::Slot(Slot::Pos(n)));
                    }
                } else if end > i + 1 && !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let name = sql.get(i + 1..end).unwrap_or("").to_owned();
                    toks.push(Tok::Slot(Slot::Named(name)));
                } else {
                    toks.push(Tok::Other);
                }
                i = end.max(i + 1);
            }
            b'=' => {
                toks.push(Tok::Cmp);
                i += 1;
            }
            b'<' | b'>' | b'!' => {
                let two = b
                    .get(i + 1)
                    .is_some_and(|&n| n == b'=' || (c == b'<' && n == b'>'));
                toks.push(if c == b'!' && !two {
                    Tok::Other
                } else {
                    Tok::Cmp
                });
                i += if two { 2 } else { 1 };
            }
            b'(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            b')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            b',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            b'.' => {
                toks.push(Tok::Dot);
                i += 1;
            }
            d if d.is_ascii_digit() => {
                i = ident_end(i);
                toks.push(Tok::Other);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let end = ident_end(i);
                toks.push(Tok::Ident(sql.get(i..end).unwrap_or("").to_owned()));
                i = end.max(i + 1);
            }
            _ => {
                toks.push(Tok::Other);
                i += 1;
            }
        }
    }
    if format_style && !questions.is_empty() {
        renumber_without(&mut toks, &questions);
    }
    toks
}

/// Turns the bare `?` at `questions` into [`Tok::Other`] and numbers the remaining
/// unnumbered positional placeholders (`%s`) from 0 again.
fn renumber_without(toks: &mut [Tok], questions: &[usize]) {
    for &q in questions {
        if let Some(t) = toks.get_mut(q) {
            *t = Tok::Other;
        }
    }
    // Only `?` and `%s` are numbered by the lexer's counter; `$1`, `?1`, `:1` carry their own
    // number, and they do not mix with `%s` in any driver, so every remaining `Pos` is a `%s`.
    let mut next = 0usize;
    for t in toks.iter_mut() {
        if let Tok::Slot(Slot::Pos(n)) = t {
            *n = next;
            next += 1;
        }
    }
}

/// A SQL statement in a string, as a frame variable holds it (Python's repr adds quotes:
/// `"'INSERT INTO …'"`).
pub(crate) fn statement(s: &str) -> Option<&str> {
    let t = s.trim();
    let t = match t.as_bytes() {
        [q @ (b'\'' | b'"'), .., last] if last == q && t.len() >= 2 => &t[1..t.len() - 1],
        _ => t,
    };
    super::sql::looks_like_sql(t).then_some(t)
}

/// The placeholders of a statement bound to sensitive columns, with the columns' classes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Classed {
    /// Keyed by placeholders, which the sender writes.
    by_slot: HashMap<Slot, KeyClass>,
    /// The positional ones, in order of position.
    positions: Vec<(usize, KeyClass)>,
    /// How many positional parameters the statement takes ([`Bindings::positional`]).
    positional: usize,
}

impl Classed {
    fn is_empty(&self) -> bool {
        self.by_slot.is_empty()
    }

    /// The bindings of `self` that `earlier` did not have (a new slot, or a slot now of
    /// another class): what reading the statement again after it was scrubbed adds.
    fn minus(mut self, earlier: &Classed) -> Classed {
        self.by_slot
            .retain(|slot, class| earlier.by_slot.get(slot) != Some(class));
        self.positions
            .retain(|(n, class)| earlier.by_slot.get(&Slot::Pos(*n)) != Some(class));
        self
    }

    /// The class of the parameter called `key`: by name (`ssn` for `:ssn`, `@ssn`), or by
    /// position (`0` for the first `?`).
    fn of_key(&self, key: &str) -> Option<KeyClass> {
        let key = key.trim_start_matches([':', '@', '$']);
        if let Ok(n) = key.parse::<usize>() {
            if let Some(&class) = self.by_slot.get(&Slot::Pos(n)) {
                return Some(class);
            }
        }
        self.by_slot.get(&Slot::Named(key.to_owned())).copied()
    }
}

/// The placeholders of `sql` bound to sensitive columns; empty if none is.
pub(crate) fn classify(eng: &Engine, sql: &str, cx: &mut Cx) -> Classed {
    // Read from the statement as scrubbing writes it (literals as `?`): the next scrub of
    // the output reads that form, and must bind the same parameters to the same columns.
    let (stripped, _) = super::sql::strip_literals(sql);
    let b = bindings(&stripped);
    let mut classed = Classed {
        positional: b.positional,
        ..Classed::default()
    };
    if b.bound.is_empty() {
        return classed;
    }
    let person = b.tables.iter().any(|t| eng.names_a_person(t, cx))
        || b.bound.iter().any(|x| {
            eng.key_class(&x.column, cx)
                .is_some_and(Engine::is_phi_sibling)
        });
    for x in b.bound {
        let class = match eng.key_class(&x.column, cx) {
            Some(c) => c,
            None if person && eng.is_bare_name_key(&x.column, cx) => KeyClass::Name,
            None => continue,
        };
        if let Slot::Pos(n) = x.slot {
            classed.positions.push((n, class));
        }
        classed.by_slot.entry(x.slot).or_insert(class);
    }
    classed.positions.sort_by_key(|&(n, _)| n);
    classed.positions.dedup_by_key(|&mut (n, _)| n);
    classed
}

/// Redacts the parameters in `params` bound to sensitive columns (`classed`, from
/// [`classify`]). `cx`'s path is the parameters' own.
fn redact_params(eng: &Engine, classed: &Classed, params: &mut Node<'_>, cx: &mut Cx) {
    match params {
        Node::Array(items) => {
            let rows = !items.is_empty() && items.iter().all(Node::is_array);
            if !rows {
                redact_positional(eng, items, classed, cx);
                return;
            }
            for (r, row) in items.iter_mut().enumerate() {
                let len = cx.push_index(r);
                if let Node::Array(row) = row {
                    redact_positional(eng, row, classed, cx);
                }
                cx.pop(len);
            }
        }
        Node::Object(map) => {
            for (key, value) in map.iter_mut() {
                if let Some(class) = classed.of_key(key) {
                    let len = cx.push(key);
                    eng.redact_value(class, value, cx);
                    cx.pop(len);
                }
            }
        }
        Node::Str(s) => {
            if let Some(new) =
                super::kv::redact_repr_items(eng, s, &classed.positions, classed.positional, cx)
            {
                s.set(new);
            }
        }
        Node::Number(_) | Node::Null | Node::Bool(_) => {}
    }
}

fn redact_positional(eng: &Engine, items: &mut [Node<'_>], classed: &Classed, cx: &mut Cx) {
    if items.len() != classed.positional {
        return;
    }
    for &(n, class) in &classed.positions {
        if let Some(item) = items.get_mut(n) {
            let len = cx.push_index(n);
            eng.redact_value(class, item, cx);
            cx.pop(len);
        }
    }
}

/// Finds a statement and its parameters among an object's members: a statement under one
/// of [`SQL_KEYS`] and parameters under one of [`PARAM_KEYS`] (the locals of
/// `execute(sql, params)`). Called on every object the generic walk visits, so it looks at
/// the keys first and reads a statement only when both kinds are there.
///
/// Scrubbing the statement can change how it reads (a detector's label replacing a run of
/// garbage leaves `zip_code = %(z)s` parseable), and the next scrub of the output reads the
/// scrubbed statement. So the walker calls this twice: before the members are walked, with
/// `earlier` `None`, and after, with what the first call returned, to redact what the
/// scrubbed statement binds and the first reading did not.
pub(crate) fn redact_sibling_params(
    eng: &Engine,
    map: &mut Object<'_>,
    earlier: Option<&Classed>,
    cx: &mut Cx,
) -> Option<Classed> {
    if map.len() < 2 || !map.keys().any(|k| PARAM_KEYS.contains(&k)) {
        return None;
    }
    // From here on `Some`: the walker reads the map again after its members are scrubbed,
    // and scrubbing may make a statement of what was none.
    let Some(sql) = map
        .iter()
        .filter(|(k, _)| SQL_KEYS.contains(&k.as_str()))
        .find_map(|(_, v)| v.as_str().and_then(statement).map(str::to_owned))
    else {
        return Some(Classed::default());
    };
    let classed = classify(eng, &sql, cx);
    let todo = match earlier {
        Some(earlier) => classed.clone().minus(earlier),
        None => classed.clone(),
    };
    if !todo.is_empty() {
        for (key, value) in map.iter_mut() {
            if PARAM_KEYS.contains(&key.as_str()) {
                let len = cx.push(key);
                redact_params(eng, &todo, value, cx);
                cx.pop(len);
            }
        }
    }
    Some(classed)
}

/// A span's or breadcrumb's `data`, or a span's typed `attributes`, holding the parameters
/// of `sql` (the span's description or name, the breadcrumb's message): under
/// [`PARAM_KEYS`] (`db.params`, `db.sql.bindings`), or one member per parameter,
/// `db.query.parameter.<name or index>` (typed attributes keep it in `value`). `cx`'s path
/// is `data`'s own.
/// `earlier` as in [`redact_sibling_params`]: the walker calls this before and after the
/// statement is scrubbed. `Some` whenever there is a `data`, statement or not.
pub(crate) fn redact_data_params(
    eng: &Engine,
    sql: &str,
    data: &mut Object<'_>,
    earlier: Option<&Classed>,
    cx: &mut Cx,
) -> Option<Classed> {
    let Some(sql) = statement(sql) else {
        return Some(Classed::default());
    };
    let all = classify(eng, sql, cx);
    let classed = match earlier {
        Some(earlier) => all.clone().minus(earlier),
        None => all.clone(),
    };
    if classed.is_empty() {
        return Some(all);
    }
    for (key, value) in data.iter_mut() {
        if PARAM_KEYS.contains(&key.as_str()) {
            let len = cx.push(key);
            redact_params(eng, &classed, value, cx);
            cx.pop(len);
            continue;
        }
        let Some(class) = key
            .strip_prefix("db.query.parameter.")
            .and_then(|name| classed.of_key(name))
        else {
            continue;
        };
        let len = cx.push(key);
        match value {
            Node::Object(typed) if typed.contains_key("value") => {
                for (k, v) in typed.iter_mut() {
                    if k.as_str() == "value" {
                        let l = cx.push("value");
                        eng.redact_value(class, v, cx);
                        cx.pop(l);
                    }
                }
            }
            other => eng.redact_value(class, other, cx),
        }
        cx.pop(len);
    }
    Some(all)
}

#[cfg(test)]
mod tests;
