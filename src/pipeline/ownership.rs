//! The ownership marker: tags plus the object's uid in the description, so a retry adopts the
//! container it created instead of making another, and a foreign container is never touched.
//! Proxmox lower-cases, de-duplicates and sorts tags, so the check parses them back.
//!
//! The uid travels twice: in the tag `lxcop-<uid>` and in the line the operator appends to the
//! description. One edit (a Notes change in the Proxmox GUI) cannot erase both, and a container
//! this object's status records as created here keeps being ours while our tag is on it: a
//! missing or altered marker is drift, restored by the configure phase. Only a marker naming
//! another object is a conflict.
//!
//! The uid is read only from the line the operator appends: the description's last line, alone
//! (the whole description) or after a blank line. A marker-like line a user wrote anywhere else
//! in the text claims nothing (and the CRD refuses one in `spec.description` in the first place,
//! as it refuses an `lxcop-` tag in `spec.tags`).

/// The tag every container the operator manages carries.
pub const OWNER_TAG: &str = "lxc-operator";
/// The prefix of the tag that names the owning object's uid (`lxcop-<uid>`).
pub const UID_TAG_PREFIX: &str = "lxcop-";
/// The description line that names the owning object's uid.
pub const UID_PREFIX: &str = "lxc-operator-uid: ";

/// Whose a container is, judged from its Proxmox config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Ours: the tag and this object's uid in the description.
    This,
    /// Ours, but the marker is missing or altered (the description was edited, a tag removed):
    /// our uid tag is on it, or this object's status records creating it and our tag is on it.
    /// The configure phase writes the marker back.
    Unmarked,
    /// Marked by the operator for another object.
    OtherObject(String),
    /// Not marked by the operator at all.
    Foreign,
}

impl Owner {
    /// Ours, marked or not.
    pub fn is_ours(&self) -> bool {
        matches!(self, Owner::This | Owner::Unmarked)
    }
}

/// The tag that names `uid`.
pub fn uid_tag(uid: &str) -> String {
    format!("{UID_TAG_PREFIX}{}", uid.to_ascii_lowercase())
}

/// Whether a tag is one the operator writes for itself (the owner tag or a uid tag).
pub fn is_operator_tag(tag: &str) -> bool {
    let tag = tag.to_ascii_lowercase();
    tag == OWNER_TAG || tag.starts_with(UID_TAG_PREFIX)
}

/// Splits a Proxmox tag list (`;`, `,` or white space separated) into lower-case tags.
pub fn parse_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' ', '\t', '\n'])
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The tags to send: the spec's and the template's (without any operator tag they may carry),
/// the owner tag and the uid tag, as Proxmox would store them.
pub fn tags_with_owner<'a>(tags: impl IntoIterator<Item = &'a String>, uid: &str) -> String {
    let mut all: Vec<String> = tags
        .into_iter()
        .map(|t| t.to_ascii_lowercase())
        .filter(|t| !is_operator_tag(t))
        .collect();
    all.push(OWNER_TAG.to_string());
    all.push(uid_tag(uid));
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

/// Whether `s` has the form of a Kubernetes object uid (a UUID).
fn is_object_uid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whose the container with these `tags` and `description` is, for the object `uid`;
/// `recorded` says this object's status records creating (or adopting) exactly this container
/// (its VMID on its node, `Created` true).
pub fn owner(tags: Option<&str>, description: Option<&str>, uid: &str, recorded: bool) -> Owner {
    let tags = tags.map(parse_tags).unwrap_or_default();
    let tagged = tags.iter().any(|t| t == OWNER_TAG);
    let uid = uid.to_ascii_lowercase();
    let mut tag_uids = tags.iter().filter_map(|t| t.strip_prefix(UID_TAG_PREFIX));
    if let Some(other) = tag_uids.clone().find(|u| *u != uid) {
        return Owner::OtherObject(other.to_string());
    }
    let uid_tagged = tag_uids.any(|u| u == uid);
    let marked = description.and_then(split_marker).map(|(_, found)| found);
    match marked {
        Some(found) if found.eq_ignore_ascii_case(&uid) => match tagged {
            true => Owner::This,
            false if uid_tagged || recorded => Owner::Unmarked,
            false => Owner::Foreign,
        },
        // A marker that is not a uid at all was altered by hand: it names no object.
        Some(found) if is_object_uid(found) && (tagged || uid_tagged) => {
            Owner::OtherObject(found.to_string())
        }
        _ if uid_tagged || (recorded && tagged) => Owner::Unmarked,
        _ => Owner::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c2d8e-0000-4000-8000-000000000001";

    #[test]
    fn the_marker_survives_proxmox_normalising_tags() {
        let sent = tags_with_owner(&["Web".to_string(), "db".to_string(), "web".to_string()], UID);
        assert_eq!(sent, format!("db;lxc-operator;lxcop-{UID};web"));
        // What Proxmox may give back: other order, other separators, other case.
        for stored in [
            "db;lxc-operator;web",
            "LXC-Operator,db web",
            "web;db;lxc-operator",
        ] {
            let desc = description_with_owner(Some("my box"), UID);
            assert_eq!(
                owner(Some(stored), Some(&desc), UID, false),
                Owner::This,
                "{stored}"
            );
        }
    }

    #[test]
    fn foreign_and_other_objects_are_told_apart() {
        let desc = description_with_owner(None, UID);
        assert_eq!(
            owner(Some("web"), Some(&desc), UID, false),
            Owner::Foreign,
            "uid without the tag"
        );
        assert_eq!(
            owner(Some("lxc-operator"), Some("hand made"), UID, false),
            Owner::Foreign,
            "tag without uid"
        );
        assert_eq!(owner(None, None, UID, false), Owner::Foreign);
        let someone = "6f1c2d8e-0000-4000-8000-0000000000aa";
        let other = description_with_owner(None, someone);
        assert_eq!(
            owner(Some("lxc-operator"), Some(&other), UID, false),
            Owner::OtherObject(someone.into())
        );
        // A marker cut short by hand names no object: on its own it claims nothing.
        let cut = description_with_owner(None, "6f1c2d8e");
        assert_eq!(
            owner(Some("lxc-operator"), Some(&cut), UID, false),
            Owner::Foreign
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
                owner(Some("lxc-operator"), Some(&desc), UID, false),
                Owner::This,
                "the operator's line wins: {desc:?}"
            );
            assert_eq!(
                owner(Some("lxc-operator"), Some(&desc), victim, false),
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
                owner(Some("lxc-operator"), Some(&hand_made), victim, false),
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
            owner(Some("lxc-operator"), Some(desc.trim_end()), UID, false),
            Owner::This
        );
        let bare = description_with_owner(None, UID);
        assert_eq!(
            owner(Some("lxc-operator"), Some(bare.trim_end()), UID, false),
            Owner::This
        );
    }

    #[test]
    fn a_notes_edit_on_our_container_is_drift_not_a_conflict() {
        let ours = format!("lxc-operator;lxcop-{UID};web");
        for notes in [None, Some("edited in the GUI"), Some("lxc-operator-uid: 6f1c")] {
            // The uid tag alone says whose it is, whatever the status remembers.
            assert_eq!(
                owner(Some(&ours), notes, UID, false),
                Owner::Unmarked,
                "{notes:?}"
            );
            // Without the uid tag (a container from before it, or the tag removed too): ours
            // only when this object's status records creating it here.
            assert_eq!(owner(Some("lxc-operator;web"), notes, UID, true), Owner::Unmarked);
            assert_eq!(owner(Some("lxc-operator;web"), notes, UID, false), Owner::Foreign);
            // No operator tag at all: not even a recorded creation claims it.
            assert_eq!(owner(Some("web"), notes, UID, true), Owner::Foreign);
        }
        // The owner tag removed, the description intact and naming us.
        let desc = description_with_owner(Some("box"), UID);
        assert_eq!(
            owner(Some(&format!("lxcop-{UID}")), Some(&desc), UID, false),
            Owner::Unmarked
        );
        assert_eq!(owner(Some(&ours), Some(&desc), UID, false), Owner::This);
        assert!(Owner::Unmarked.is_ours() && Owner::This.is_ours() && !Owner::Foreign.is_ours());
    }

    #[test]
    fn a_marker_naming_another_object_stays_a_conflict() {
        let other = "6f1c2d8e-0000-4000-8000-0000000000ff";
        let desc = description_with_owner(None, UID);
        // Another object's uid tag beats our description marker and our recorded status.
        for recorded in [false, true] {
            assert_eq!(
                owner(
                    Some(&format!("lxc-operator;lxcop-{other}")),
                    Some(&desc),
                    UID,
                    recorded
                ),
                Owner::OtherObject(other.into())
            );
            assert_eq!(
                owner(Some(&format!("lxcop-{UID};lxcop-{other}")), None, UID, recorded),
                Owner::OtherObject(other.into())
            );
            // Another object's description marker beats our tags.
            let theirs = description_with_owner(None, other);
            assert_eq!(
                owner(
                    Some(&format!("lxc-operator;lxcop-{UID}")),
                    Some(&theirs),
                    UID,
                    recorded
                ),
                Owner::OtherObject(other.into())
            );
        }
    }

    #[test]
    fn a_spec_cannot_carry_an_operator_tag() {
        let victim = "6f1c2d8e-0000-4000-8000-00000000beef";
        let sent = tags_with_owner(&[format!("lxcop-{victim}"), "LXCOP-X".into(), "db".into()], UID);
        assert_eq!(sent, format!("db;lxc-operator;lxcop-{UID}"));
        assert!(is_operator_tag("LXC-Operator") && is_operator_tag(&uid_tag(UID)) && !is_operator_tag("lxc"));
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
