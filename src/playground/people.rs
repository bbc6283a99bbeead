//! Who is in the playground's workspace: everyone the catalog names (requesters,
//! approvers, admins) and one stand-in member per approver user group, since a
//! catalog names groups but not their members. The page's user picker lists them and
//! shows mentions by name.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::core::catalog::{Catalog, SourceSpec};

/// A person the page can act as.
#[derive(Clone, Debug, Serialize)]
pub struct Person {
    pub id: String,
    /// The requester's name from the catalog; otherwise the id.
    pub name: String,
    /// What they may do, in words: `requester (10.8.0.14/32)`, `approver of payments-db`.
    pub roles: Vec<String>,
    /// A `/jit request …` they can send as it is, for requesters.
    pub example: Option<String>,
}

/// The workspace: people and the members of each user group.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    pub people: Vec<Person>,
    pub groups: Vec<(String, Vec<String>)>,
}

/// The stand-in member of a group: `S02PLATFRM` has `U02PLATFRM`.
pub fn group_member(group: &str) -> String {
    format!("U{}", group.trim_start_matches('S'))
}

impl Workspace {
    pub fn of(catalog: &Catalog) -> Workspace {
        // Ordered by first appearance: requesters, then approvers, admins, members.
        let mut order: Vec<String> = Vec::new();
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut add = |id: &str, role: String| {
            if !roles.contains_key(id) {
                order.push(id.to_owned());
            }
            let list = roles.entry(id.to_owned()).or_default();
            if !list.contains(&role) {
                list.push(role);
            }
        };
        // Requesters by name, so the page opens as the first of them alphabetically.
        let mut requesters: Vec<_> = catalog.requesters().collect();
        requesters.sort_by(|a, b| a.name.cmp(&b.name).then(a.user.cmp(&b.user)));
        for r in requesters {
            names.insert(r.user.to_string(), r.name.clone());
            add(
                r.user.as_str(),
                format!("requester from {}", source_words(&r.source)),
            );
        }
        let mut approves: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in catalog.targets() {
            for u in &t.approvers.users {
                approves
                    .entry(u.to_string())
                    .or_default()
                    .push(t.name.to_string());
            }
            for g in &t.approvers.groups {
                let member = group_member(g.as_str());
                approves
                    .entry(member.clone())
                    .or_default()
                    .push(t.name.to_string());
                groups.entry(g.to_string()).or_insert_with(|| vec![member]);
            }
        }
        for (user, targets) in &approves {
            add(user, format!("approver of {}", targets.join(", ")));
        }
        for admin in &catalog.limits.admins {
            add(admin.as_str(), "admin: may revoke any grant".to_owned());
        }
        for (group, members) in &groups {
            for m in members {
                add(m, format!("member of user group {group} (stand-in)"));
            }
        }
        let people = order
            .into_iter()
            .map(|id| Person {
                name: names.get(&id).cloned().unwrap_or_else(|| id.clone()),
                roles: roles.remove(&id).unwrap_or_default(),
                example: example_request(catalog, &id),
                id,
            })
            .collect();
        Workspace {
            people,
            groups: groups.into_iter().collect(),
        }
    }
}

fn source_words(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Addresses(list) => {
            let shown: Vec<String> = list.iter().map(|a| a.to_string()).collect();
            shown.join(", ")
        }
        SourceSpec::Range(range) => format!("an address in {range}"),
        SourceSpec::Pod(pod) => format!("a pod in {}", pod.namespace),
    }
}

/// A request the person can send as it is: the first target, its default duration,
/// the first address of a range source.
fn example_request(catalog: &Catalog, id: &str) -> Option<String> {
    let requester = catalog.requester(&id.parse().ok()?)?;
    let target = catalog.targets().first()?;
    let from = match &requester.source {
        SourceSpec::Range(range) => range
            .hosts()
            .next()
            .map(|a| format!(" from {a}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Some(format!(
        "request {} {}{from} INC-4411 replica lag",
        target.name, target.default_duration
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::Settings;

    #[test]
    fn the_example_workspace_has_everyone_the_catalog_names() {
        let (_, catalog) =
            Settings::load_checked_toml(crate::playground::EXAMPLE_CONFIG, &HashMap::new())
                .unwrap();
        let w = Workspace::of(&catalog);
        let ids: Vec<&str> = w.people.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            &ids[..4],
            ["U0ALICE001", "U0BOB00001", "U0CAROL001", "U04OBSLEAD"]
        );
        for id in ["U01DBLEAD1", "U05ONCALL1", "U02PLATFRM", "U02DBAS001"] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        let bob = &w.people[1];
        assert_eq!(
            bob.example.as_deref(),
            Some("request payments-db 30m from 10.8.1.1 INC-4411 replica lag")
        );
        assert_eq!(
            w.groups,
            [
                ("S02DBAS001".to_owned(), vec!["U02DBAS001".to_owned()]),
                ("S02PLATFRM".to_owned(), vec!["U02PLATFRM".to_owned()]),
            ]
        );
        let lead = w.people.iter().find(|p| p.id == "U01DBLEAD1").unwrap();
        assert_eq!(
            lead.roles,
            ["approver of payments-db, grafana-admin, ledger-debug"]
        );
        assert!(
            lead.example.is_none(),
            "approvers who do not request get none"
        );
    }
}
