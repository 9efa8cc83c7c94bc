//! The simulator's own parameter rules: a compact text notation per parameter, parsed once.
//!
//! Notation: `name[!]:type[ opt ...]`, where `!` marks a required parameter and `name[n]/32`
//! an indexed family (`net0`..`net31`). Types: `int[min,max]`, `num[min,max]` (either bound
//! may be empty), `bool`, `str`, `enum(a|b|c)`, `prop(net|rootfs|mp|features|dev|unused)`.
//! Options: `fmt=<format>` (see `formats.rs`), `max=<maxLength>`, `req=<other param>`.
//! The table is written by hand; `tests/conformance.rs` holds it to the official schema.

/// The type of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    Int { min: Option<i64>, max: Option<i64> },
    Num { min: Option<f64>, max: Option<f64> },
    Bool,
    Str,
    Enum(Vec<String>),
    Prop(String),
}

/// One parameter rule (or an indexed family of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Plain name, or the family prefix (`net` for `net[n]`).
    pub name: String,
    /// For `name[n]/N`: the number of members (`net0`..`net{N-1}`).
    pub indexed: Option<u32>,
    pub required: bool,
    pub ty: Ty,
    pub fmt: Option<String>,
    pub max_len: Option<usize>,
    pub requires: Option<String>,
}

impl Rule {
    /// The name as the schema spells it (`net[n]` for families).
    pub fn schema_name(&self) -> String {
        match self.indexed {
            Some(_) => format!("{}[n]", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether a concrete parameter name belongs to this rule.
    pub fn matches(&self, key: &str) -> bool {
        match self.indexed {
            None => key == self.name,
            Some(count) => key
                .strip_prefix(self.name.as_str())
                .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
                .filter(|rest| rest.len() == 1 || !rest.starts_with('0'))
                .and_then(|rest| rest.parse::<u32>().ok())
                .is_some_and(|n| n < count),
        }
    }
}

/// Parses one rule line; panics on a malformed table entry (a programming error, caught by tests).
pub fn parse_rule(line: &str) -> Rule {
    let (head, rest) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("rule without type: {line}"));
    let (head, required) = match head.strip_suffix('!') {
        Some(h) => (h, true),
        None => (head, false),
    };
    let (name, indexed) = match head.split_once("[n]/") {
        Some((n, count)) => (n.to_string(), Some(count.parse().expect("family size"))),
        None => (head.to_string(), None),
    };
    let mut parts = rest.split(' ');
    let ty = parse_type(parts.next().unwrap_or_default(), line);
    let mut rule = Rule {
        name,
        indexed,
        required,
        ty,
        fmt: None,
        max_len: None,
        requires: None,
    };
    for opt in parts.filter(|p| !p.is_empty()) {
        match opt.split_once('=') {
            Some(("fmt", f)) => rule.fmt = Some(f.to_string()),
            Some(("max", m)) => rule.max_len = Some(m.parse().expect("max length")),
            Some(("req", r)) => rule.requires = Some(r.to_string()),
            _ => panic!("unknown rule option {opt:?} in {line}"),
        }
    }
    rule
}

fn parse_type(t: &str, line: &str) -> Ty {
    fn bounds<T: std::str::FromStr>(t: &str) -> (Option<T>, Option<T>) {
        let Some(inner) = t.split_once('[').and_then(|(_, r)| r.strip_suffix(']')) else {
            return (None, None);
        };
        let (a, b) = inner.split_once(',').unwrap_or((inner, ""));
        (a.parse().ok(), b.parse().ok())
    }
    if t.starts_with("int") {
        let (min, max) = bounds(t);
        Ty::Int { min, max }
    } else if t.starts_with("num") {
        let (min, max) = bounds(t);
        Ty::Num { min, max }
    } else if t == "bool" {
        Ty::Bool
    } else if t == "str" {
        Ty::Str
    } else if let Some(list) = t.strip_prefix("enum(").and_then(|r| r.strip_suffix(')')) {
        Ty::Enum(list.split('|').map(str::to_string).collect())
    } else if let Some(name) = t.strip_prefix("prop(").and_then(|r| r.strip_suffix(')')) {
        Ty::Prop(name.to_string())
    } else {
        panic!("unknown type {t:?} in {line}")
    }
}

/// Parses the rule groups of one endpoint (cached per group by address).
pub fn parse_groups(groups: &[&[&str]]) -> Vec<Rule> {
    groups
        .iter()
        .flat_map(|g| g.iter().map(|l| parse_rule(l)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_notation() {
        let r = parse_rule("net[n]/32:prop(net)");
        assert_eq!(r.indexed, Some(32));
        assert!(r.matches("net0") && r.matches("net31"));
        assert!(!r.matches("net32") && !r.matches("net") && !r.matches("net01"));
        let r = parse_rule("vmid!:int[100,999999999] fmt=pve-vmid");
        assert!(r.required);
        assert_eq!(
            r.ty,
            Ty::Int {
                min: Some(100),
                max: Some(999_999_999)
            }
        );
        let r = parse_rule("swap:int[0,]");
        assert_eq!(
            r.ty,
            Ty::Int {
                min: Some(0),
                max: None
            }
        );
        let r = parse_rule("cmode:enum(shell|console|tty)");
        assert_eq!(
            r.ty,
            Ty::Enum(vec!["shell".into(), "console".into(), "tty".into()])
        );
    }
}
