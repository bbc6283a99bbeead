//! The tamper-guard admission policy (`manifests/overlays/tamper-guard`) decides what it
//! says. The test API server (1.20) has no ValidatingAdmissionPolicy, so its CEL, read
//! from the YAML file, is evaluated with the `cel` crate (the maintained successor of
//! `cel-interpreter`, from the same project) the way the API server does: every match
//! condition must hold for the policy to apply, the variables are computed in order,
//! and the first validation that is false refuses the request with its
//! `messageExpression`. Against jitbot's own rendered grants, as JSON.
//!
//! What this does not check: the API server type-checks against the NetworkPolicy
//! schema (`has(object.metadata.labels)` tests a field, here a map key: the same
//! answer for these objects) and bounds the CEL's cost; `kubernetes-validate` in
//! `.ci/run` checks the objects against the 1.33 schemas.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cel::{Context, Env, Program, Value};
use chrono::TimeDelta;
use serde_json::{Value as Json, json};
use serde_yaml::Value as Yaml;

use jitbot::core::netpol;
use jitbot::core::request::AccessRequest;

const POLICY_FILE: &str = "manifests/overlays/tamper-guard/tamper-guard.yaml";
const JITBOT: &str = "system:serviceaccount:jitbot:jitbot";
const NAMESPACE_CONTROLLER: &str = "system:serviceaccount:kube-system:namespace-controller";
const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";
const DEVELOPER: &str = "dev@example.com";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

fn documents() -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICY_FILE);
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {POLICY_FILE}");
    found[0]
}

fn text(v: &Yaml) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

/// One CEL expression from the file, compiled, with where it came from.
struct Expr {
    name: String,
    source: String,
    program: Program,
}

impl Expr {
    fn new(env: &Env, name: String, source: &str) -> Self {
        let program = env
            .compile(source)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}\n{source}"));
        Expr {
            name,
            source: source.to_owned(),
            program,
        }
    }

    /// Evaluates; an error is a failure of the test (with `failurePolicy: Fail` the
    /// API server would refuse the request, jitbot's too, for a reason nobody meant).
    fn eval(&self, ctx: &Context) -> Value {
        self.program
            .execute(ctx)
            .unwrap_or_else(|e| panic!("{} fails: {e:?}\n{}", self.name, self.source))
    }

    fn truth(&self, ctx: &Context) -> bool {
        match self.eval(ctx) {
            Value::Bool(b) => b,
            other => panic!("{} is not a bool: {other:?}", self.name),
        }
    }
}

struct Validation {
    expression: Expr,
    message: Expr,
}

/// The policy's CEL, as the API server evaluates it.
struct Policy {
    env: Arc<Env>,
    match_conditions: Vec<Expr>,
    variables: Vec<Expr>,
    validations: Vec<Validation>,
}

#[derive(Debug, PartialEq)]
enum Decision {
    /// A match condition is false: the policy does not apply (every other
    /// NetworkPolicy write, and all of jitbot's).
    NotMatched,
    /// Matched, and every validation holds.
    Allowed,
    /// Refused, with this message.
    Refused(String),
}

impl Policy {
    fn load() -> Self {
        let docs = documents();
        let spec = &of_kind(&docs, "ValidatingAdmissionPolicy")["spec"];
        let env = Arc::new(Env::stdlib());
        let named = |list: &Yaml, what: &str| -> Vec<Expr> {
            list.as_sequence()
                .unwrap_or_else(|| panic!("spec.{what} is a list"))
                .iter()
                .map(|c| {
                    let name = format!("{what} {}", text(&c["name"]));
                    Expr::new(&env, name, text(&c["expression"]))
                })
                .collect()
        };
        let match_conditions = named(&spec["matchConditions"], "matchConditions");
        let variables = named(&spec["variables"], "variables");
        let validations = spec["validations"]
            .as_sequence()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, v)| Validation {
                expression: Expr::new(&env, format!("validation {i}"), text(&v["expression"])),
                message: Expr::new(
                    &env,
                    format!("validation {i} messageExpression"),
                    text(&v["messageExpression"]),
                ),
            })
            .collect();
        Policy {
            env,
            match_conditions,
            variables,
            validations,
        }
    }

    fn admit(&self, review: &Review) -> Decision {
        let mut ctx = Context::with_env(self.env.clone());
        for (name, value) in [
            ("request", &review.request),
            ("object", &review.object),
            ("oldObject", &review.old_object),
        ] {
            ctx.add_variable(name, value).unwrap();
        }
        ctx.add_variable("params", Json::Null).unwrap();
        if !self.match_conditions.iter().all(|c| c.truth(&ctx)) {
            return Decision::NotMatched;
        }
        // Each variable may use the ones before it, as `variables.<name>`.
        let mut variables: HashMap<String, Value> = HashMap::new();
        for v in &self.variables {
            ctx.add_variable_from_value("variables", variables.clone());
            let key = v.name.trim_start_matches("variables ").to_owned();
            variables.insert(key, v.eval(&ctx));
        }
        ctx.add_variable_from_value("variables", variables);
        for v in &self.validations {
            if !v.expression.truth(&ctx) {
                return match v.message.eval(&ctx) {
                    Value::String(s) => Decision::Refused(s.to_string()),
                    other => panic!("{} is not a string: {other:?}", v.message.name),
                };
            }
        }
        Decision::Allowed
    }
}

/// What the API server hands the policy: `request` (an AdmissionRequest's fields),
/// `object` (null for DELETE) and `oldObject` (null for CREATE).
struct Review {
    request: Json,
    object: Json,
    old_object: Json,
}

fn name_of(policy: &Json) -> (String, String) {
    let meta = &policy["metadata"];
    (
        meta["namespace"].as_str().unwrap().to_owned(),
        meta["name"].as_str().unwrap().to_owned(),
    )
}

fn request(operation: &str, user: &str, about: &Json) -> Json {
    let (namespace, name) = name_of(about);
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
        "requestKind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
        "requestResource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
        "name": name,
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "dryRun": false,
    })
}

fn create(user: &str, policy: &Json) -> Review {
    Review {
        request: request("CREATE", user, policy),
        object: policy.clone(),
        old_object: Json::Null,
    }
}

fn update(user: &str, before: &Json, after: &Json) -> Review {
    Review {
        request: request("UPDATE", user, after),
        object: after.clone(),
        old_object: before.clone(),
    }
}

fn delete(user: &str, policy: &Json) -> Review {
    Review {
        request: request("DELETE", user, policy),
        object: Json::Null,
        old_object: policy.clone(),
    }
}

/// Alice's 30-minute grant to the postgres pods in `payments`, as jitbot applies it.
fn grant() -> Json {
    let req = AccessRequest::test()
        .expiring_in(TimeDelta::minutes(30))
        .build();
    let policy = netpol::render(&req, req.expires_at.unwrap()).remove(0);
    let json = serde_json::to_value(policy).unwrap();
    assert_eq!(json["metadata"]["labels"][MANAGED_BY], "jitbot");
    json
}

/// Someone else's policy in the same namespace.
fn unlabelled() -> Json {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-metrics", "namespace": "payments"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "postgres"}},
            "ingress": [{"ports": [{"port": 9187, "protocol": "TCP"}]}],
            "policyTypes": ["Ingress"],
        },
    })
}

fn with_label(mut policy: Json, key: &str, value: &str) -> Json {
    policy["metadata"]["labels"][key] = json!(value);
    policy
}

fn refused(decision: Decision) -> String {
    match decision {
        Decision::Refused(message) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn jitbot_creates_changes_and_deletes_its_grants_without_reaching_the_validations() {
    let p = Policy::load();
    let g = grant();
    let mut extended = g.clone();
    extended["metadata"]["annotations"]["jitbot.dev/expires-at"] = json!("2026-11-26T16:00:00Z");
    assert_eq!(p.admit(&create(JITBOT, &g)), Decision::NotMatched);
    // Server-side apply of a policy that exists is admitted as an UPDATE.
    assert_eq!(
        p.admit(&update(JITBOT, &g, &extended)),
        Decision::NotMatched
    );
    assert_eq!(p.admit(&delete(JITBOT, &g)), Decision::NotMatched);
}

#[test]
fn nobody_else_deletes_a_grant() {
    let p = Policy::load();
    let g = grant();
    let (namespace, name) = name_of(&g);
    let message = refused(p.admit(&delete(DEVELOPER, &g)));
    assert_eq!(
        message,
        format!(
            "NetworkPolicy {namespace}/{name} is a jitbot grant: only jitbot deletes it, not {DEVELOPER}. End the grant with /jit revoke in Slack or jitbot grants revoke, and jitbot deletes the policy itself."
        )
    );
    // Another ServiceAccount named jitbot, in another namespace, is someone else.
    refused(p.admit(&delete("system:serviceaccount:payments:jitbot", &g)));
    refused(p.admit(&delete("system:serviceaccount:jitbot:default", &g)));
}

#[test]
fn deleting_a_namespace_deletes_its_grants() {
    let p = Policy::load();
    let g = grant();
    assert_eq!(
        p.admit(&delete(NAMESPACE_CONTROLLER, &g)),
        Decision::Allowed
    );
    assert_eq!(p.admit(&delete(GARBAGE_COLLECTOR, &g)), Decision::Allowed);
    // They may delete, not change or create.
    let mut widened = g.clone();
    widened["spec"]["ingress"][0]["from"] = json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}]);
    refused(p.admit(&update(NAMESPACE_CONTROLLER, &g, &widened)));
    refused(p.admit(&create(GARBAGE_COLLECTOR, &g)));
}

#[test]
fn nobody_else_widens_extends_or_unlabels_a_grant() {
    let p = Policy::load();
    let g = grant();
    let mut widened = g.clone();
    widened["spec"]["ingress"][0]["from"] = json!([{"ipBlock": {"cidr": "0.0.0.0/0"}}]);
    let mut extended = g.clone();
    extended["metadata"]["annotations"]["jitbot.dev/expires-at"] = json!("2027-01-01T00:00:00Z");
    // Without the label, jitbot's guard and reconciler no longer see it: it would
    // outlive its expiry.
    let mut unlabelled = g.clone();
    unlabelled["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(MANAGED_BY);
    let relabelled = with_label(g.clone(), MANAGED_BY, "someone-else");
    let (namespace, name) = name_of(&g);
    for after in [&widened, &extended, &unlabelled, &relabelled] {
        let message = refused(p.admit(&update(DEVELOPER, &g, after)));
        assert_eq!(
            message,
            format!(
                "NetworkPolicy {namespace}/{name} is a jitbot grant: only jitbot changes it, not {DEVELOPER}, and its app.kubernetes.io/managed-by label stays. Ask for access with /jit request, or more time with /jit extend."
            )
        );
    }
}

#[test]
fn nobody_else_forges_a_grant() {
    let p = Policy::load();
    // Creating a policy with jitbot's label.
    let forged = with_label(unlabelled(), MANAGED_BY, "jitbot");
    let message = refused(p.admit(&create(DEVELOPER, &forged)));
    assert_eq!(
        message,
        format!(
            "the label app.kubernetes.io/managed-by: jitbot marks jitbot's grants, and only jitbot puts it on a NetworkPolicy (NetworkPolicy payments/allow-metrics, by {DEVELOPER}). Use another value, or ask for access with /jit request."
        )
    );
    // A copy of a real grant, made by someone else.
    refused(p.admit(&create(DEVELOPER, &grant())));
    // Adding the label to a policy that exists.
    assert_eq!(
        refused(p.admit(&update(DEVELOPER, &unlabelled(), &forged))),
        message
    );
}

#[test]
fn other_policies_are_not_looked_at() {
    let p = Policy::load();
    let mine = unlabelled();
    let mut changed = mine.clone();
    changed["spec"]["ingress"][0]["from"] = json!([{"ipBlock": {"cidr": "10.0.0.0/8"}}]);
    let helm = with_label(mine.clone(), MANAGED_BY, "Helm");
    let other_labels = with_label(mine.clone(), "app.kubernetes.io/name", "jitbot");
    for review in [
        create(DEVELOPER, &mine),
        update(DEVELOPER, &mine, &changed),
        delete(DEVELOPER, &mine),
        create(DEVELOPER, &helm),
        update(DEVELOPER, &mine, &helm),
        delete(DEVELOPER, &helm),
        create(DEVELOPER, &other_labels),
        delete(NAMESPACE_CONTROLLER, &mine),
    ] {
        assert_eq!(
            p.admit(&review),
            Decision::NotMatched,
            "{}",
            review.request["operation"]
        );
    }
}

#[test]
fn the_policy_denies_refusals_and_fails_closed() {
    let docs = documents();
    let policy = of_kind(&docs, "ValidatingAdmissionPolicy");
    let binding = of_kind(&docs, "ValidatingAdmissionPolicyBinding");
    for d in [policy, binding] {
        assert_eq!(d["apiVersion"], "admissionregistration.k8s.io/v1");
    }
    let spec = &policy["spec"];
    assert_eq!(spec["failurePolicy"], "Fail");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(
        binding["spec"]["validationActions"],
        serde_yaml::from_str::<Yaml>("[Deny]").unwrap()
    );
    // Every namespace: no resource selector narrows the binding.
    assert!(binding["spec"]["matchResources"].is_null());
    let rules = spec["matchConstraints"]["resourceRules"]
        .as_sequence()
        .unwrap();
    assert_eq!(rules.len(), 1);
    let words = |v: &Yaml| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|s| text(s).to_owned())
            .collect()
    };
    assert_eq!(words(&rules[0]["apiGroups"]), ["networking.k8s.io"]);
    assert_eq!(words(&rules[0]["resources"]), ["networkpolicies"]);
    assert_eq!(
        words(&rules[0]["operations"]),
        ["CREATE", "UPDATE", "DELETE"]
    );
    for v in spec["validations"].as_sequence().unwrap() {
        // 403, which jitbot (and kubectl) report as forbidden, not as invalid input.
        assert_eq!(v["reason"], "Forbidden");
        assert!(!text(&v["message"]).contains('\n'));
    }
}
