//! The ownership marker: a tag plus the object's uid in the description, so a retry adopts the
//! container it created instead of making another, and a foreign container is never touched.
//! Proxmox lower-cases, de-duplicates and sorts tags, so the check parses them back.
//!
//! The uid is read only from the line the operator appends: the description's last line, alone
//! (the whole description) or after a blank line. A marker-like line a user wrote anywhere else
//! in the text claims nothing (and the CRD refuses one in `spec.description` in the first place).

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

/// Splits a description into the text before the operator's marker line and the uid it names,
/// when its last line is that marker in the form [`description_with_owner`] writes: the whole
/// description, or after a blank line. Trailing white space is ignored (Proxmox may drop the
/// final newline); anything else is not a marker.
fn split_marker(description: &str) -> Option<(&str, &str)> {
    let trimmed = description.trim_end();
    let (text, last) = match trimmed.rsplit_once('\n') {
        None => ("", trimmed),
        Some((before, last)) => {
            // The operator separates its line from the text with one blank line.
            (before.strip_suffix('\n')?, last)
        }
    };
    let uid = last.strip_prefix(UID_PREFIX)?;
    let is_uid = !uid.is_empty() && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    is_uid.then_some((text, uid))
}

/// The description with the operator's marker line removed (for `Retain`, or to compare with
/// the spec). Only the trailing marker goes; lines a user wrote stay.
pub fn description_without_owner(description: &str) -> String {
    let text = split_marker(description).map_or(description, |(text, _)| text);
    text.trim_end().to_string()
}

/// Whose the container with these `tags` and `description` is, for the object `uid`.
pub fn owner(tags: Option<&str>, description: Option<&str>, uid: &str) -> Owner {
    let tagged = tags
        .map(parse_tags)
        .is_some_and(|t| t.iter().any(|t| t == OWNER_TAG));
    let marked = description.and_then(split_marker).map(|(_, uid)| uid);
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
    fn a_marker_line_written_by_a_user_claims_nothing() {
        let victim = "6f1c2d8e-0000-4000-8000-00000000beef";
        // The forger's own text carries the victim's marker (the CRD refuses it; this is what
        // gets through when it is installed without the rule); the operator appends the forger's.
        let forged = format!("{UID_PREFIX}{victim}");
        for text in [
            forged.clone(),
            format!("{forged}\n"),
            format!("intro\n{forged}\nmore text"),
            format!("intro\n\n{forged}"),
        ] {
            let desc = description_with_owner(Some(&text), UID);
            assert_eq!(
                owner(Some("lxc-operator"), Some(&desc), UID),
                Owner::This,
                "the operator's line wins: {desc:?}"
            );
            assert_eq!(
                owner(Some("lxc-operator"), Some(&desc), victim),
                Owner::OtherObject(UID.into()),
                "the victim's uid is not read from the forger's text: {desc:?}"
            );
            assert_eq!(
                description_without_owner(&desc),
                text.trim_end(),
                "only the operator's line comes off"
            );
        }
        // A description that is only user text, with a marker-like line somewhere inside or
        // glued to the text without the blank line, is not marked at all.
        for hand_made in [
            format!("intro\n{UID_PREFIX}{victim}\n"),
            format!("{UID_PREFIX}{victim}\ntrailing words"),
            format!("{UID_PREFIX}{victim} and more"),
            format!("{UID_PREFIX}\n"),
        ] {
            assert_eq!(
                owner(Some("lxc-operator"), Some(&hand_made), victim),
                Owner::Foreign,
                "{hand_made:?}"
            );
        }
    }

    #[test]
    fn the_marker_is_found_without_its_final_newline() {
        // Proxmox may hand the description back trimmed.
        let desc = description_with_owner(Some("my box"), UID);
        assert_eq!(
            owner(Some("lxc-operator"), Some(desc.trim_end()), UID),
            Owner::This
        );
        let bare = description_with_owner(None, UID);
        assert_eq!(
            owner(Some("lxc-operator"), Some(bare.trim_end()), UID),
            Owner::This
        );
    }

    #[test]
    fn the_crd_rule_refuses_the_prefix_the_parser_reads() {
        let rule = crate::crd::container::NO_OWNER_MARKER_RULE;
        assert!(rule.contains(&format!("'{}'", UID_PREFIX.trim_end())), "{rule}");
    }

    #[test]
    fn the_marker_line_comes_off_cleanly() {
        let desc = description_with_owner(Some("line one\nline two\n"), UID);
        assert!(desc.ends_with(&format!("{UID_PREFIX}{UID}\n")));
        assert_eq!(description_without_owner(&desc), "line one\nline two");
        assert_eq!(description_without_owner(&description_with_owner(None, UID)), "");
    }
}
