//! Pod Security, spreading and jitbot's own NetworkPolicy: what the README's "What
//! jitbot can touch" promises is what the manifests say.

use serde_yaml::Value;

use jitbot::settings::Settings;

use super::docs;

fn strs(v: &Value) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The parts of Pod Security's `restricted` profile a pod spec can break.
fn assert_restricted(what: &str, pod: &Value) {
    let sc = &pod["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}");
    assert_ne!(sc["runAsUser"], 0, "{what}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(
            pod.get(host).is_none() || pod[host] == false,
            "{what}: {host}"
        );
    }
    for volume in pod["volumes"].as_sequence().into_iter().flatten() {
        let kinds: Vec<&str> = volume
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| *k != "name")
            .collect();
        for kind in kinds {
            assert!(
                [
                    "configMap",
                    "emptyDir",
                    "secret",
                    "persistentVolumeClaim",
                    "projected"
                ]
                .contains(&kind),
                "{what}: a {kind} volume is not allowed under restricted"
            );
        }
    }
    for c in pod["containers"].as_sequence().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"], "{what}");
        assert!(sc["capabilities"].get("add").is_none(), "{what}");
        assert!(sc.get("privileged").is_none(), "{what}");
        for port in c["ports"].as_sequence().into_iter().flatten() {
            assert!(port.get("hostPort").is_none(), "{what}");
        }
    }
}

#[test]
fn the_namespace_enforces_restricted_and_both_pods_meet_it() {
    let ns = &docs("manifests/base/namespace.yaml")[0];
    let labels = &ns["metadata"]["labels"];
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            labels[format!("pod-security.kubernetes.io/{mode}").as_str()],
            "restricted"
        );
    }
    let pinned = labels["pod-security.kubernetes.io/enforce-version"]
        .as_str()
        .unwrap();
    assert!(
        pinned.starts_with("v1."),
        "enforce is pinned to a version: {pinned}"
    );
    assert_eq!(labels["pod-security.kubernetes.io/warn-version"], "latest");

    let jitbot = &docs("manifests/base/deployment.yaml")[0];
    assert_restricted("jitbot", &jitbot["spec"]["template"]["spec"]);
    let redis = &docs("manifests/redis/statefulset.yaml")[0];
    let redis_pod = &redis["spec"]["template"]["spec"];
    assert_restricted("redis", redis_pod);
    assert_eq!(redis_pod["automountServiceAccountToken"], false);
}

#[test]
fn replicas_spread_across_nodes_without_blocking_scheduling() {
    let deployment = &docs("manifests/base/deployment.yaml")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(spread["maxSkew"], 1);
    // minDomains needs 1.24+ and DoNotSchedule; the test API server is 1.20.
    assert!(spread.get("minDomains").is_none());
    assert_eq!(
        spread["labelSelector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_metrics_port_is_the_one_jitbot_listens_on_and_the_service_exposes_it() {
    let deployment = &docs("manifests/base/deployment.yaml")[0];
    let ports = &deployment["spec"]["template"]["spec"]["containers"][0]["ports"];
    let metrics = ports
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a container port named metrics");
    let port = metrics["containerPort"].as_u64().unwrap();
    let listen = Settings::default().server.metrics_listen;
    assert!(listen.ends_with(&format!(":{port}")), "{listen} vs {port}");
    let service = &docs("manifests/base/service.yaml")[0];
    let exposed: Vec<&Value> = service["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .collect();
    assert!(
        exposed.iter().any(|p| p["targetPort"] == "metrics"),
        "{exposed:?}"
    );
}

/// The ports of a rule as `port/protocol`.
fn ports(rule: &Value) -> Vec<String> {
    rule["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["port"].as_u64().unwrap(),
                p["protocol"].as_str().unwrap()
            )
        })
        .collect()
}

fn namespace_of(peer: &Value) -> &str {
    peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        .as_str()
        .unwrap()
}

#[test]
fn jitbots_network_policy_names_every_peer() {
    let policy = &docs("manifests/base/networkpolicy.yaml")[0];
    let spec = &policy["spec"];
    assert_eq!(strs(&spec["policyTypes"]), ["Ingress", "Egress"]);

    let ingress = spec["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 2);
    assert_eq!(namespace_of(&ingress[0]["from"][0]), "ingress-nginx");
    assert_eq!(ports(&ingress[0]), ["8080/TCP"]);
    assert_eq!(namespace_of(&ingress[1]["from"][0]), "monitoring");
    assert_eq!(ports(&ingress[1]), ["9090/TCP"]);
    let http_port = Settings::default().server.listen;
    assert!(http_port.ends_with(":8080"), "{http_port}");

    let egress = spec["egress"].as_sequence().unwrap();
    assert_eq!(egress.len(), 3);
    // Every rule names where it goes: none is "any address on this port".
    for rule in egress.iter().chain(ingress) {
        let peers = rule.get("to").or_else(|| rule.get("from"));
        assert!(
            peers.is_some_and(|p| !p.as_sequence().unwrap().is_empty()),
            "{rule:?}"
        );
    }
    let dns = &egress[0];
    assert_eq!(namespace_of(&dns["to"][0]), "kube-system");
    assert_eq!(
        dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(ports(dns), ["53/UDP", "53/TCP"]);

    let api_server = &egress[1];
    assert!(api_server["to"][0]["ipBlock"]["cidr"].is_string());
    assert_eq!(ports(api_server), ["443/TCP", "6443/TCP"]);

    let slack = &egress[2];
    assert_eq!(ports(slack), ["443/TCP"]);
    let internet = &slack["to"][0]["ipBlock"];
    assert_eq!(internet["cidr"], "0.0.0.0/0");
    let except = strs(&internet["except"]);
    for private in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
    ] {
        assert!(except.contains(&private), "{except:?}");
    }
    // The API server rule's default ranges are exactly what the internet rule leaves out.
    for block in api_server["to"].as_sequence().unwrap() {
        let cidr = block["ipBlock"]["cidr"].as_str().unwrap();
        assert!(except.contains(&cidr), "{cidr}");
    }
}

#[test]
fn jitbot_reaches_its_redis_and_redis_reaches_nothing() {
    let policies = docs("manifests/redis/networkpolicy.yaml");
    let redis = &policies[0];
    assert_eq!(strs(&redis["spec"]["policyTypes"]), ["Ingress", "Egress"]);
    assert!(
        redis["spec"].get("egress").is_none(),
        "Redis needs no way out"
    );
    assert_eq!(
        redis["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "jitbot"
    );
    let to_redis = &policies[1];
    assert_eq!(
        to_redis["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "jitbot"
    );
    assert_eq!(strs(&to_redis["spec"]["policyTypes"]), ["Egress"]);
    let rule = &to_redis["spec"]["egress"][0];
    assert_eq!(
        rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "jitbot-redis"
    );
    assert_eq!(ports(rule), ["6379/TCP"]);
}
