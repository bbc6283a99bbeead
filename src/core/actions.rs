//! The action ids of jitbot's Slack buttons: Approve and Deny on the approval card,
//! "Revoke now" on the expiry warning. The Slack renderer puts them on the buttons and
//! the interactions endpoint dispatches clicks by them; both adapters depend on this
//! module, never on each other. They are part of every card already posted, so a
//! changed id would leave the buttons on those cards dead.

pub const APPROVE: &str = "jit_approve";
pub const DENY: &str = "jit_deny";
pub const REVOKE: &str = "jit_revoke";
