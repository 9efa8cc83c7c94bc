//! The ownership marker: a tag plus the object's uid in the description, so a retry adopts the
//! container it created instead of making another, and a foreign container is never touched.
//! Proxmox lower-cases, de-duplicates and sorts tags, so the check parses them back.

/// The tag every container the operator manages carries.
pub const OWNER_TAG: &str = "lxc-operator";
/// The description line that names the owning object's uid.
pub const UID_PREFIX: &str = "lxc-operator-uid: ";

/// Whose a container is, judged from its Proxmox config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Ours: the tag and this object's uid.
    This,
    /// Marked by the operator for another object.
    OtherObject(String),
    /// Not marked by the operator at all.
    Foreign,
}

/// Splits a Proxmox tag list (`;`, `,` or white space separated) into lower-case tags.
pub fn parse_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' ', '\t', '\n'])
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The tags to send: the spec's, the template's and the owner tag, as Proxmox would store them.
pub fn tags_with_owner<'a>(tags: impl IntoIterator<Item = &'a String>) -> String {
    let mut all: Vec<String> = tags.into_iter().map(|t| t.to_ascii_lowercase()).collect();
    all.push(OWNER_TAG.to_string());
    all.sort();
    all.dedup();
    all.join(";")
}

/// The description to send: the spec's text, then the marker line.
pub fn description_with_owner(description: Option<&str>, uid: &str) -> String {
    match description.map(str::trim_end).filter(|d| !d.is_empty()) {
        Some(text) => format!("{text}\n\n{UID_PREFIX}{uid}\n"),
        None => format!("{UID_PREFIX}{uid}\n"),
    }
}

/// The description with the marker line removed (for `Retain`, or to compare with the spec).
pub fn description_without_owner(description: &str) -> String {
    let kept: Vec<&str> = description
        .lines()
        .filter(|l| !l.starts_with(UID_PREFIX))
        .collect();
    kept.join("\n").trim_end().to_string()
}

/// Whose the container with these `tags` and `description` is, for the object `uid`.
pub fn owner(tags: Option<&str>, description: Option<&str>, uid: &str) -> Owner {
    let tagged = tags
        .map(parse_tags)
        .is_some_and(|t| t.iter().any(|t| t == OWNER_TAG));
    let marked = description
        .and_then(|d| d.lines().find_map(|l| l.strip_prefix(UID_PREFIX)))
        .map(str::trim);
    match (tagged, marked) {
        (true, Some(found)) if found == uid => Owner::This,
        (true, Some(found)) => Owner::OtherObject(found.to_string()),
        _ => Owner::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c2d8e-0000-4000-8000-000000000001";

    #[test]
    fn the_marker_survives_proxmox_normalising_tags() {
        let sent = tags_with_owner(&["Web".to_string(), "db".to_string(), "web".to_string()]);
        assert_eq!(sent, "db;lxc-operator;web");
        // What Proxmox may give back: other order, other separators, other case.
        for stored in [
            "db;lxc-operator;web",
            "LXC-Operator,db web",
            "web;db;lxc-operator",
        ] {
            let desc = description_with_owner(Some("my box"), UID);
            assert_eq!(owner(Some(stored), Some(&desc), UID), Owner::This, "{stored}");
        }
    }

    #[test]
    fn foreign_and_other_objects_are_told_apart() {
        let desc = description_with_owner(None, UID);
        assert_eq!(
            owner(Some("web"), Some(&desc), UID),
            Owner::Foreign,
            "uid without the tag"
        );
        assert_eq!(
            owner(Some("lxc-operator"), Some("hand made"), UID),
            Owner::Foreign,
            "tag without uid"
        );
        assert_eq!(owner(None, None, UID), Owner::Foreign);
        let other = description_with_owner(None, "someone-else");
        assert_eq!(
            owner(Some("lxc-operator"), Some(&other), UID),
            Owner::OtherObject("someone-else".into())
        );
    }

    #[test]
    fn the_marker_line_comes_off_cleanly() {
        let desc = description_with_owner(Some("line one\nline two\n"), UID);
        assert!(desc.ends_with(&format!("{UID_PREFIX}{UID}\n")));
        assert_eq!(description_without_owner(&desc), "line one\nline two");
        assert_eq!(description_without_owner(&description_with_owner(None, UID)), "");
    }
}
