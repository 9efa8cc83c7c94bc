//! Kubernetes Events for condition transitions and failures, published through kube's
//! recorder (which folds repeats into one Event series). An Event is due only when a
//! condition's status or reason changes, so a steady state publishes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The recorder every controller of this process shares.
pub fn recorder(client: kube::Client, instance: Option<String>) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: "lxc-operator".into(),
            instance,
        },
    )
}

/// The Event a condition change calls for, if any: `Normal` when it turned true, `Warning`
/// when it is false with a new reason.
pub fn transition_event(before: Option<&Condition>, after: &Condition, action: &str) -> Option<Event> {
    let changed = before.is_none_or(|b| b.status != after.status || b.reason != after.reason);
    if !changed {
        return None;
    }
    let healthy = after.status == "True";
    if before.is_none() && healthy && after.reason.is_empty() {
        return None;
    }
    let note = if after.message.is_empty() {
        format!("{} is {}", after.type_, after.status)
    } else {
        format!("{} is {}: {}", after.type_, after.status, after.message)
    };
    Some(Event {
        type_: if healthy {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: after.reason.clone(),
        note: Some(note.chars().take(1024).collect()),
        action: action.to_string(),
        secondary: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn cond(status: &str, reason: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn only_changes_publish() {
        let ready = cond("True", "Ready");
        let e = transition_event(None, &ready, "Probe").unwrap();
        assert_eq!((e.type_, e.reason.as_str()), (EventType::Normal, "Ready"));
        assert!(
            transition_event(Some(&ready), &ready, "Probe").is_none(),
            "steady state: no Event"
        );
        let down = cond("False", "Unreachable");
        let w = transition_event(Some(&ready), &down, "Probe").unwrap();
        assert_eq!((w.type_, w.reason.as_str()), (EventType::Warning, "Unreachable"));
        let other = cond("False", "AuthenticationFailed");
        assert!(
            transition_event(Some(&down), &other, "Probe").is_some(),
            "a new reason is news"
        );
    }
}
