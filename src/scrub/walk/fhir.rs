//! FHIR R4/R5 resources (any JSON object with a `resourceType`, Bundles included, in a
//! body or a string that holds JSON). FHIR's datatypes say what a value is wherever it
//! sits, so the walk follows them instead of key words: a `HumanName`'s `family` is a
//! name (the generic walk reads `family` as the device family), a `ContactPoint`'s
//! `value` a phone or an email by its `system`, an `Identifier`'s `value` an id. Names of
//! practitioners follow the same setting as HL7 provider fields.

use crate::json::{Node, Object};

use super::*;

/// Resources whose own `name`, `telecom`, `address` and `identifier` are a person's.
const PERSON_RESOURCES: &[&str] = &["Patient", "RelatedPerson", "Person"];
/// Resources that describe a provider (kept unless providers are redacted).
const PROVIDER_RESOURCES: &[&str] = &["Practitioner", "PractitionerRole"];
/// Reference targets that are a person, so a reference's `display` is a name and its id
/// an identifier.
const PERSON_REFERENCES: &[&str] = &["Patient/", "RelatedPerson/", "Person/"];

/// Extensions with a known PHI value, by URL suffix.
fn extension_class(url: &str) -> Option<KeyClass> {
    let last = url.rsplit('/').next().unwrap_or(url);
    match last {
        "patient-mothersMaidenName" | "humanname-mothers-family" => Some(KeyClass::Name),
        "patient-birthPlace" => Some(KeyClass::Address),
        "patient-birthTime" => Some(KeyClass::Dob),
        "us-core-birthsex" | "us-core-genderIdentity" => None,
        _ => None,
    }
}

/// What the walk knows about where it is.
#[derive(Debug, Clone, Copy)]
struct Scope {
    /// Names, contacts and addresses here are a person's (a patient, a contact, a
    /// subscriber), or a provider's that the config redacts.
    person: bool,
}

impl Engine {
    /// Whether `map` is a FHIR resource.
    pub(super) fn is_fhir_resource(&self, map: &Object<'_>) -> bool {
        self.formats.fhir
            && map
                .get("resourceType")
                .and_then(Node::as_str)
                .is_some_and(|t| t.len() <= 64 && t.starts_with(|c: char| c.is_ascii_uppercase()))
    }

    /// Walks one resource.
    pub(super) fn fhir_resource(&self, map: &mut Object<'_>, cx: &mut Cx) {
        let kind = map
            .get("resourceType")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_owned();
        let person = PERSON_RESOURCES.contains(&kind.as_str())
            || (self.formats.redact_providers && PROVIDER_RESOURCES.contains(&kind.as_str()));
        self.fhir_members(map, Scope { person }, &kind, cx);
    }

    fn fhir_members(&self, map: &mut Object<'_>, scope: Scope, kind: &str, cx: &mut Cx) {
        for (key, child) in map.iter_mut() {
            let len = cx.push(key);
            self.fhir_member(key, child, scope, kind, cx);
            cx.pop(len);
        }
    }

    fn fhir_member(&self, key: &str, child: &mut Node<'_>, scope: Scope, kind: &str, cx: &mut Cx) {
        match key {
            "resourceType" | "meta" | "status" | "gender" | "use" | "system" | "language"
            | "implicitRules" | "url" | "fullUrl" | "code" | "coding" | "category" | "period"
            | "rank" => {
                // Schema fields: codes, systems, URLs of definitions.
                if !matches!(child, Node::Str(_) | Node::Number(_) | Node::Bool(_)) {
                    self.fhir_value(child, scope, kind, cx);
                }
            }
            "id" if scope.person && !kind.is_empty() => {
                self.redact_whole(KeyClass::Mrn, child, cx);
            }
            "name" if scope.person => self.fhir_leaves(child, KeyClass::Name, cx),
            "address" if scope.person => self.fhir_address(child, cx),
            "birthDate" | "deceasedDateTime" => self.redact_whole(KeyClass::Dob, child, cx),
            "telecom" if scope.person => self.fhir_telecom(child, cx),
            "identifier" => self.fhir_identifier(child, cx),
            "subscriberId" => self.redact_whole(KeyClass::Insurance, child, cx),
            "class" if kind == "Coverage" => self.fhir_coverage_class(child, cx),
            "photo" => self.redact_whole(KeyClass::Custom, child, cx),
            // Attachment.data and Signature.data: the document or signature itself.
            "data" => self.redact_whole(KeyClass::Custom, child, cx),
            "text" if matches!(child, Node::Object(_)) => self.fhir_narrative(child, cx),
            "extension" | "modifierExtension" => self.fhir_extensions(child, scope, kind, cx),
            // Patient.contact, Coverage.subscriber … hold a person of their own.
            "contact" | "link" | "guardian" => {
                self.fhir_value(child, Scope { person: true }, "", cx)
            }
            "resource" => match child {
                Node::Object(res) if self.is_fhir_resource(res) => self.fhir_resource(res, cx),
                other => self.fhir_value(other, scope, kind, cx),
            },
            _ => match child {
                Node::Object(obj) if obj.contains_key("reference") => self.fhir_reference(obj, cx),
                Node::Object(obj) if self.is_fhir_resource(obj) => self.fhir_resource(obj, cx),
                Node::Object(_) | Node::Array(_) => self.fhir_value(child, scope, kind, cx),
                // Any other string (Observation.valueString, notes): key rules and detectors.
                _ => {
                    if self.apply_key(key, child, scope.person, cx) == Outcome::Remove {
                        *child = Node::Null;
                    }
                }
            },
        }
    }

    /// A nested element (a BackboneElement or a datatype): its members by the same rules.
    fn fhir_value(&self, value: &mut Node<'_>, scope: Scope, kind: &str, cx: &mut Cx) {
        match value {
            Node::Object(obj) => {
                if self.is_fhir_resource(obj) {
                    self.fhir_resource(obj, cx);
                } else if obj.contains_key("reference") {
                    self.fhir_reference(obj, cx);
                } else {
                    self.fhir_members(obj, scope, kind, cx);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.fhir_value(item, scope, kind, cx);
                    cx.pop(len);
                }
            }
            other => self.walk_value(other, "", cx),
        }
    }

    /// Every string leaf of a `HumanName` except `use` and `period`.
    fn fhir_leaves(&self, value: &mut Node<'_>, class: KeyClass, cx: &mut Cx) {
        match value {
            Node::Object(obj) => {
                for (k, v) in obj.iter_mut() {
                    if matches!(k.as_str(), "use" | "period" | "type") {
                        continue;
                    }
                    let len = cx.push(k);
                    self.fhir_leaves(v, class, cx);
                    cx.pop(len);
                }
            }
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.fhir_leaves(item, class, cx);
                    cx.pop(len);
                }
            }
            other => self.redact_whole(class, other, cx),
        }
    }

    /// An `Address`: every part below the state (Safe Harbor keeps states).
    fn fhir_address(&self, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.fhir_address(item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(obj) => {
                for (k, v) in obj.iter_mut() {
                    if matches!(k.as_str(), "use" | "type" | "state" | "country" | "period") {
                        continue;
                    }
                    let len = cx.push(k);
                    self.redact_whole(KeyClass::Address, v, cx);
                    cx.pop(len);
                }
            }
            other => self.redact_whole(KeyClass::Address, other, cx),
        }
    }

    /// `ContactPoint`s: the `value` is an email or a phone by `system`.
    fn fhir_telecom(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let Node::Array(items) = value else {
            return self.redact_whole(KeyClass::Phone, value, cx);
        };
        for (i, item) in items.iter_mut().enumerate() {
            let len = cx.push_index(i);
            if let Node::Object(cp) = item {
                let class = match cp.get("system").and_then(Node::as_str) {
                    Some("email") => KeyClass::Email,
                    _ => KeyClass::Phone,
                };
                for (k, v) in cp.iter_mut() {
                    if k.as_str() == "value" {
                        let l = cx.push("value");
                        self.redact_whole(class, v, cx);
                        cx.pop(l);
                    }
                }
            }
            cx.pop(len);
        }
    }

    /// `Identifier`s: the `value` (the `system` says whose numbering it is and stays).
    fn fhir_identifier(&self, value: &mut Node<'_>, cx: &mut Cx) {
        match value {
            Node::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = cx.push_index(i);
                    self.fhir_identifier(item, cx);
                    cx.pop(len);
                }
            }
            Node::Object(obj) => {
                for (k, v) in obj.iter_mut() {
                    let len = cx.push(k);
                    match k.as_str() {
                        "value" => self.redact_whole(KeyClass::Mrn, v, cx),
                        "assigner" => {
                            if let Node::Object(r) = v {
                                self.fhir_reference(r, cx);
                            }
                        }
                        _ => {}
                    }
                    cx.pop(len);
                }
            }
            other => self.redact_whole(KeyClass::Mrn, other, cx),
        }
    }

    /// `Coverage.class`: the value of a `group` or `subgroup` class is the subscriber's
    /// group number (as HL7 IN1-8 and X12 SBR03 are); a plan's and the other members stay
    /// by the usual rules. R4 writes the value as a string, R5 as an `Identifier`.
    fn fhir_coverage_class(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let Node::Array(items) = value else {
            return self.fhir_value(value, Scope { person: false }, "Coverage", cx);
        };
        for (i, item) in items.iter_mut().enumerate() {
            let len = cx.push_index(i);
            match item {
                Node::Object(class) => {
                    let group = class
                        .get("type")
                        .and_then(|t| match t {
                            Node::Object(t) => t.get("coding"),
                            _ => None,
                        })
                        .is_some_and(|coding| match coding {
                            Node::Array(codings) => codings.iter().any(|c| match c {
                                Node::Object(c) => c
                                    .get("code")
                                    .and_then(Node::as_str)
                                    .is_some_and(|code| matches!(code, "group" | "subgroup")),
                                _ => false,
                            }),
                            _ => false,
                        });
                    for (k, v) in class.iter_mut() {
                        let l = cx.push(k);
                        match (k.as_str(), &mut *v) {
                            ("value", Node::Object(id)) if group => {
                                for (ik, iv) in id.iter_mut() {
                                    if ik.as_str() == "value" {
                                        let il = cx.push(ik);
                                        self.redact_whole(KeyClass::Insurance, iv, cx);
                                        cx.pop(il);
                                    }
                                }
                            }
                            ("value", _) if group => self.redact_whole(KeyClass::Insurance, v, cx),
                            _ => self.fhir_member(k, v, Scope { person: false }, "Coverage", cx),
                        }
                        cx.pop(l);
                    }
                }
                other => self.fhir_value(other, Scope { person: false }, "Coverage", cx),
            }
            cx.pop(len);
        }
    }

    /// A `Reference`: a person's `display` is a name and their id an identifier
    /// (`Patient/123` → `Patient/[mrn]`). A practitioner's `display` is a provider's name,
    /// kept unless providers are redacted (as HL7 provider fields are).
    fn fhir_reference(&self, obj: &mut Object<'_>, cx: &mut Cx) {
        let target = obj.get("reference").and_then(Node::as_str).unwrap_or("");
        let provider = target.starts_with("Practitioner/")
            || target.starts_with("PractitionerRole/")
            || target.contains("/Practitioner/")
            || target.contains("/PractitionerRole/");
        let person = PERSON_REFERENCES.iter().any(|p| target.contains(p))
            || (self.formats.redact_providers && target.contains("Practitioner/"));
        for (k, v) in obj.iter_mut() {
            let len = cx.push(k);
            match (k.as_str(), person) {
                ("display", true) => self.redact_whole(KeyClass::Name, v, cx),
                ("display", false) if provider && matches!(v, Node::Str(_)) => {}
                ("reference", true) => {
                    if let Node::Str(s) = v {
                        if let Some((head, id)) = s.rsplit_once('/') {
                            if let Some(new) = self.redact_class(KeyClass::Mrn, id, cx) {
                                s.set(format!("{head}/{new}"));
                            }
                        }
                    }
                }
                ("identifier", _) => self.fhir_identifier(v, cx),
                (_, _) => self.walk_value(v, k, cx),
            }
            cx.pop(len);
        }
    }

    /// Narrative `text.div`: the resource rendered for people, so all of it is PHI when
    /// the resource is; kept as an XHTML div around the label.
    fn fhir_narrative(&self, value: &mut Node<'_>, cx: &mut Cx) {
        let Node::Object(obj) = value else {
            return;
        };
        for (k, v) in obj.iter_mut() {
            let len = cx.push(k);
            if k.as_str() == "div" {
                if let Node::Str(s) = v {
                    let label = self
                        .class_actions
                        .get(&KeyClass::Clinical)
                        .map(|a| a.replacement.clone());
                    if let Some(label) = label {
                        let new =
                            format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{label}</div>");
                        if s.as_ref() as &str != new && !self.is_label(s) {
                            cx.record(KeyClass::Clinical.rule(), Method::Replace, 1);
                            s.set(new);
                        }
                    }
                }
            }
            cx.pop(len);
        }
    }

    /// Extensions: a known PHI extension's `value[x]` by its class; others walked.
    fn fhir_extensions(&self, value: &mut Node<'_>, scope: Scope, kind: &str, cx: &mut Cx) {
        let Node::Array(items) = value else {
            return self.fhir_value(value, scope, kind, cx);
        };
        for (i, item) in items.iter_mut().enumerate() {
            let len = cx.push_index(i);
            if let Node::Object(ext) = item {
                let class = ext
                    .get("url")
                    .and_then(Node::as_str)
                    .and_then(extension_class);
                match class {
                    Some(class) => {
                        for (k, v) in ext.iter_mut() {
                            if k.as_str().starts_with("value") {
                                let l = cx.push(k);
                                self.fhir_leaves(v, class, cx);
                                cx.pop(l);
                            }
                        }
                    }
                    None => self.fhir_members(ext, scope, kind, cx),
                }
            }
            cx.pop(len);
        }
    }
}
