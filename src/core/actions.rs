//! The action ids of jitbot's Slack buttons: Approve and Deny on the approval card,
//! "Revoke now" on the expiry warning, "Cancel request" on the requester's
//! acknowledgement, and the same in the App Home. The Slack renderer puts them on the buttons and
//! the interactions endpoint dispatches clicks by them; both adapters depend on this
//! module, never on each other. They are part of every card already posted, so a
//! changed id would leave the buttons on those cards dead. The decision buttons'
//! values name the round they answer (see [`decision_value`]).

use crate::core::ids::RequestId;
use crate::core::request::Round;

pub const APPROVE: &str = "jit_approve";
pub const DENY: &str = "jit_deny";
pub const REVOKE: &str = "jit_revoke";
/// "Cancel request" on the requester's acknowledgement and in the App Home.
pub const CANCEL: &str = "jit_cancel";
/// "Extend" in the App Home: opens a small form for how much longer.
pub const EXTEND: &str = "jit_extend";
/// "Acknowledge" on a break-glass card and the approvers' DM.
pub const ACKNOWLEDGE: &str = "jit_acknowledge";
/// "Revoke" on an approval card of a grant nobody approved by hand (auto-approved or
/// break-glass): the card stays, and the clicker alone is told the outcome.
pub const REVOKE_GRANT: &str = "jit_revoke_grant";

/// The value an Approve or Deny button carries: the request id for the request's own
/// decision (as every card posted so far has it), `<id>@<round>` for an extension's,
/// so that a click answers the round its card showed and no later one.
pub fn decision_value(id: &RequestId, round: Round) -> String {
    match round {
        Round::Request => id.to_string(),
        Round::Extension(n) => format!("{id}@{n}"),
    }
}

/// The request and round a button's value names; `None` for a value jitbot did not
/// write.
pub fn parse_decision_value(value: &str) -> Option<(RequestId, Round)> {
    let (id, round) = match value.split_once('@') {
        None => (value, Round::Request),
        Some((id, n)) => (id, Round::Extension(n.parse().ok()?)),
    };
    Some((id.parse().ok()?, round))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_value_names_its_request_and_round() {
        let id = RequestId::from_random([7; 10]);
        for round in [Round::Request, Round::Extension(0), Round::Extension(42)] {
            let value = decision_value(&id, round);
            assert_eq!(parse_decision_value(&value), Some((id.clone(), round)));
        }
        assert_eq!(decision_value(&id, Round::Request), id.to_string());
        assert_eq!(parse_decision_value(&format!("{id}@")), None);
        assert_eq!(parse_decision_value(&format!("{id}@x")), None);
        assert_eq!(parse_decision_value("not an id@3"), None);
    }
}
