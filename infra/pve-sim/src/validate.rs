//! Checks a request's parameters against an endpoint's rules the way PVE's JSONSchema.pm does:
//! every error is collected per parameter, with PVE's wording.

use crate::rules::{Rule, Ty};
use crate::{formats, propstr};
use std::collections::BTreeMap;

/// Request parameters (path, query and body merged), all as strings as PVE sees them in forms.
pub type Params = BTreeMap<String, String>;

/// Per-parameter error messages.
pub type ParamErrors = BTreeMap<String, String>;

/// Validates `params` against `rules`; `Err` holds one message per failing parameter.
pub fn validate(rules: &[Rule], params: &Params) -> Result<(), ParamErrors> {
    let mut errors = ParamErrors::new();
    for (key, value) in params {
        match rules.iter().find(|r| r.matches(key)) {
            None => {
                errors.insert(
                    key.clone(),
                    "property is not defined in schema and the schema does not allow additional properties"
                        .into(),
                );
            }
            Some(rule) => {
                if let Err(e) = check_value(rule, key, value) {
                    errors.insert(key.clone(), e);
                }
            }
        }
    }
    for rule in rules.iter().filter(|r| r.required && r.indexed.is_none()) {
        if !params.contains_key(&rule.name) {
            errors.insert(
                rule.name.clone(),
                "property is missing and it is not optional".into(),
            );
        }
    }
    for rule in rules.iter().filter(|r| r.indexed.is_none()) {
        if let Some(other) = &rule.requires
            && params.contains_key(&rule.name)
            && !params.contains_key(other)
        {
            errors.insert(
                other.clone(),
                format!("missing property - '{}' requires this property", rule.name),
            );
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Checks one value; the error is the message PVE puts under the parameter's name.
pub fn check_value(rule: &Rule, key: &str, v: &str) -> Result<(), String> {
    match &rule.ty {
        Ty::Int { min, max } => {
            let ok = !v.is_empty()
                && v.strip_prefix('-')
                    .unwrap_or(v)
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            let n: i64 = v
                .parse()
                .ok()
                .filter(|_| ok)
                .ok_or_else(|| format!("type check ('integer') failed - got '{v}'"))?;
            check_range(n as f64, min.map(|m| m as f64), max.map(|m| m as f64))
        }
        Ty::Num { min, max } => {
            let n: f64 = v
                .parse()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)))
                .ok_or_else(|| format!("type check ('number') failed - got '{v}'"))?;
            check_range(n, *min, *max)
        }
        Ty::Bool => match v {
            "0" | "1" => Ok(()),
            _ => Err(format!("type check ('boolean') failed - got '{v}'")),
        },
        Ty::Enum(values) => {
            if values.iter().any(|e| e == v) {
                Ok(())
            } else {
                Err(format!(
                    "value '{v}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
        Ty::Str => {
            if let Some(max) = rule.max_len
                && v.chars().count() > max
            {
                return Err(format!("value may only be {max} characters long"));
            }
            match &rule.fmt {
                Some(f) => formats::check_format(f, v).map_err(|e| format!("invalid format - {e}\n")),
                None => Ok(()),
            }
        }
        Ty::Prop(fmt) => propstr::parse(fmt, key, v).map(|_| ()),
    }
}

fn check_range(n: f64, min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    if let Some(min) = min
        && n < min
    {
        return Err(format!("value must have a minimum value of {min}"));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(format!("value must have a maximum value of {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rule;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn collects_errors_per_parameter() {
        let rules: Vec<Rule> = [
            "vmid!:int[100,999999999]",
            "onboot:bool",
            "cmode:enum(shell|console|tty)",
            "net[n]/32:prop(net)",
            "description:str max=5",
        ]
        .iter()
        .map(|l| parse_rule(l))
        .collect();
        let e = validate(
            &rules,
            &p(&[
                ("onboot", "true"),
                ("cmode", "x"),
                ("bogus", "1"),
                ("net0", "name=eth0"),
                ("description", "123456"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e["vmid"], "property is missing and it is not optional");
        assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
        assert_eq!(
            e["cmode"],
            "value 'x' does not have a value in the enumeration 'shell, console, tty'"
        );
        assert!(e["bogus"].starts_with("property is not defined in schema"));
        assert_eq!(e["description"], "value may only be 5 characters long");
        assert!(!e.contains_key("net0"));
        let e = validate(&rules, &p(&[("vmid", "99")])).unwrap_err();
        assert_eq!(e["vmid"], "value must have a minimum value of 100");
        let e = validate(&rules, &p(&[("vmid", "abc")])).unwrap_err();
        assert_eq!(e["vmid"], "type check ('integer') failed - got 'abc'");
        assert!(validate(&rules, &p(&[("vmid", "100"), ("net31", "name=eth1")])).is_ok());
    }
}
