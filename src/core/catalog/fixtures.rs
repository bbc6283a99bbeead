//! Test data for the catalog, shared by the unit tests in `src`, the integration tests
//! under `tests/` and the benches (which is why it is not `#[cfg(test)]`): the
//! `payments-db` target as a platform team writes it, a requester and their source
//! in a line each. Pure data: nothing here does I/O, and no production code may use it
//! (it is hidden from the docs for that reason).

use std::collections::BTreeMap;

use super::{PortConfig, PortSpec, Protocol, RequesterConfig, SourceConfig, TargetConfig};

/// The approver that [`target_config`] lists.
pub const APPROVER: &str = "U01DBLEAD1";
/// The approval channel that [`target_config`] posts to.
pub const APPROVAL_CHANNEL: &str = "C03DBAPPRV";

/// A label map from `(key, value)` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One TCP port.
pub fn tcp(port: u16) -> PortSpec {
    PortSpec {
        protocol: Protocol::Tcp,
        port,
        end_port: None,
    }
}

/// `[[targets]]` named `name` for the pods labelled `app=postgres` in `payments`:
/// 5432/TCP, 30 minutes unless asked otherwise and two hours at most, one approval
/// from [`APPROVER`] in [`APPROVAL_CHANNEL`], no self-approval, no description.
/// Change the rest with struct update syntax.
pub fn target_config(name: &str) -> TargetConfig {
    TargetConfig {
        name: name.to_owned(),
        description: String::new(),
        namespace: "payments".to_owned(),
        pod_selector: labels(&[("app", "postgres")]),
        ports: vec![PortConfig {
            port: 5432,
            end_port: None,
            protocol: "TCP".to_owned(),
        }],
        default_duration: "30m".to_owned(),
        max_duration: "2h".to_owned(),
        approvers: vec![APPROVER.to_owned()],
        approval_channel: APPROVAL_CHANNEL.to_owned(),
        approvals_required: 1,
        allow_self_approval: false,
        requesters: Vec::new(),
        reason_pattern: String::new(),
        reason_hint: String::new(),
        auto_approve: Vec::new(),
        break_glass: None,
        max_active_grants: 0,
    }
}

/// `[[requesters]]` for `slack_user` (no display name), whose traffic comes from
/// `source`.
pub fn requester_config(slack_user: &str, source: SourceConfig) -> RequesterConfig {
    RequesterConfig {
        slack_user: slack_user.to_owned(),
        name: String::new(),
        source,
    }
}

/// A source of fixed addresses (`10.8.0.14`, `fd00::14/128`), as the config file
/// writes it.
pub fn address_config(addresses: &[&str]) -> SourceConfig {
    SourceConfig {
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        ..SourceConfig::default()
    }
}
