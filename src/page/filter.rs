//! The page's query parameters: the overview's filters (namespace, node, phase, name search)
//! and the audit view's (object, outcome, call, time range, keyset cursor), parsed leniently —
//! a value that does not parse is ignored, never an error page.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::audit::{AuditPage, IntentId, OutcomeKind};
use crate::crd::LxcContainer;
use kube::ResourceExt;

/// Rows per audit page.
pub const AUDIT_PAGE_SIZE: u32 = 50;

/// The overview's filters (`?namespace=&node=&phase=&q=`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerFilter {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub phase: String,
    /// A part of the name, any letter case.
    #[serde(default)]
    pub q: String,
}

impl ContainerFilter {
    /// Whether a container passes every filter given.
    pub fn matches(&self, ct: &LxcContainer) -> bool {
        let status = ct.status.as_ref();
        let field = |want: &str, have: Option<&str>| want.is_empty() || have == Some(want);
        field(&self.namespace, ct.namespace().as_deref())
            && field(
                &self.node,
                status
                    .and_then(|s| s.node.as_deref())
                    .or(ct.spec.node_ref.as_deref()),
            )
            && field(&self.phase, Some(phase_of(ct)))
            && (self.q.is_empty()
                || ct
                    .name_any()
                    .to_lowercase()
                    .contains(&self.q.trim().to_lowercase()))
    }

    /// Whether any filter is set.
    pub fn is_set(&self) -> bool {
        !(self.namespace.is_empty() && self.node.is_empty() && self.phase.is_empty() && self.q.is_empty())
    }
}

/// A container's phase as shown (`Pending` before the first status).
pub fn phase_of(ct: &LxcContainer) -> &str {
    ct.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The audit view's filters (`?object=&uid=&outcome=&call=&from=&to=&before=`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditFilter {
    /// The object's name.
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub uid: String,
    /// `pending`, `succeeded` or `failed`.
    #[serde(default)]
    pub outcome: String,
    /// The operation, e.g. `create container`.
    #[serde(default)]
    pub call: String,
    /// RFC 3339 or `YYYY-MM-DDTHH:MM` (UTC, as a `datetime-local` input sends it).
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    /// The keyset cursor: the last id of the previous page.
    #[serde(default)]
    pub before: String,
}

impl AuditFilter {
    /// The store's page for these filters.
    pub fn page(&self) -> AuditPage {
        AuditPage {
            uid: non_empty(&self.uid),
            name: non_empty(&self.object),
            operation: non_empty(&self.call),
            outcome: parse_outcome(&self.outcome),
            from: parse_time(&self.from),
            to: parse_time(&self.to),
            before: self.before.trim().parse().ok().map(IntentId),
            limit: AUDIT_PAGE_SIZE,
        }
    }

    /// The same filters with another cursor, as a query string (for the next-page link).
    pub fn with_before(&self, before: i64) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("object", &self.object),
            ("uid", &self.uid),
            ("outcome", &self.outcome),
            ("call", &self.call),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect();
        pairs.push(("before", before.to_string()));
        encode_query(&pairs)
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn parse_outcome(s: &str) -> Option<OutcomeKind> {
    match s.trim() {
        "pending" => Some(OutcomeKind::Pending),
        "succeeded" => Some(OutcomeKind::Succeeded),
        "failed" => Some(OutcomeKind::Failed),
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// `k=v&k=v`, percent-encoded (the HTML escaping of the `&` happens in the template).
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_filters_become_a_page_and_bad_values_are_ignored() {
        let f = AuditFilter {
            object: "web".into(),
            outcome: "failed".into(),
            from: "2026-01-02T03:04".into(),
            to: "not a time".into(),
            before: "120".into(),
            ..AuditFilter::default()
        };
        let page = f.page();
        assert_eq!(page.name.as_deref(), Some("web"));
        assert_eq!(page.outcome, Some(OutcomeKind::Failed));
        assert_eq!(page.from.unwrap().to_rfc3339(), "2026-01-02T03:04:00+00:00");
        assert_eq!(page.to, None);
        assert_eq!(page.before, Some(IntentId(120)));
        assert_eq!(
            f.with_before(70),
            "object=web&outcome=failed&from=2026-01-02T03%3A04&to=not%20a%20time&before=70"
        );
    }

    #[test]
    fn percent_encoding_leaves_nothing_that_breaks_a_url() {
        assert_eq!(encode("a b&c=<d>/é"), "a%20b%26c%3D%3Cd%3E%2F%C3%A9");
    }
}
