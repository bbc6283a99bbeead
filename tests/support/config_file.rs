//! jitbot's config file as a platform team writes it (TOML), for the tests and benches
//! that run the `jitbot` binary on a file of their own.

use super::fakes::LEAD1;
use super::slack_world::APPROVALS;

/// A `[[targets]]` table: `name` opens the pods labelled `app = "<app>"` in
/// `namespace` on 5432, for 30 minutes unless asked otherwise and two hours at most,
/// approved by `LEAD1` in the approvals channel.
pub fn target_table(name: &str, namespace: &str, app: &str) -> String {
    format!(
        r#"
[[targets]]
name = "{name}"
namespace = "{namespace}"
pod_selector = {{ app = "{app}" }}
ports = [{{ port = 5432 }}]
default_duration = "30m"
max_duration = "2h"
approvers = ["{LEAD1}"]
approval_channel = "{APPROVALS}"
"#
    )
}
