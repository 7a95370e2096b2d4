//! Deployment files, checked without Docker: `.env.example` lists exactly the variables the program reads, with
//! its defaults; every YAML file under `docker/` and `deploy/` parses; the manifests name the ports and paths the
//! program really serves; the files for several replicas (the Kustomize overlay, the Compose file) set what a
//! replica needs; the Dockerfile's build command is the one CI runs; `multibot healthcheck` works.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use botapi_emulator::{Emulator, EmulatorConfig};
use multibot::{config::Settings, plugins::PluginRegistry};
use saphyr::{LoadableYamlNode, Yaml};

use crate::helpers::{TempDir, Web, serve};

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `NAME` of every `NAME=value` or `# NAME=value` line.
fn example_variables() -> Vec<(String, Option<String>, bool)> {
    read(".env.example")
        .lines()
        .filter_map(|line| {
            let (commented, rest) = match line.strip_prefix("# ") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, value) = rest.split_once('=')?;
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            valid.then(|| (name.to_owned(), (!value.is_empty()).then(|| value.to_owned()), commented))
        })
        .collect()
}

/// Every `${NAME}` or `${NAME:-default}` in the shipped bot files.
fn referenced_by_config() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("config/bots")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for piece in text.split("${").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn env_example_lists_exactly_what_the_program_reads() {
    let listed: BTreeSet<String> = example_variables().into_iter().map(|(name, _, _)| name).collect();
    let mut read_by_program: BTreeSet<String> = multibot::config::VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    // Read outside Settings: the tracing filter, `multibot emulator`'s listen address and the TLS trust store.
    read_by_program.extend(["RUST_LOG", "EMULATOR_LISTEN", "SSL_CERT_FILE", "SSL_CERT_DIR"].map(str::to_owned));
    read_by_program.extend(referenced_by_config());
    assert_eq!(listed, read_by_program, "left: .env.example, right: what the program reads");
}

#[test]
fn env_example_shows_the_defaults() {
    // These lines show an example, not a default (they have none).
    let examples = ["DATABASE_URL", "WEBHOOK_BASE_URL", "REDIS_URL", "RUST_LOG", "EMULATOR_LISTEN", "SSL_CERT_FILE"];
    let defaults = Settings::from_env(&|_| None).expect("defaults are valid");
    for (name, value, commented) in example_variables() {
        let Some(value) = value.filter(|_| commented && !examples.contains(&name.as_str())) else { continue };
        let Some(known) = multibot::config::VARIABLES.iter().find(|v| **v == name) else { continue };
        let one = Settings::from_env(&|asked| (asked == *known).then(|| value.clone()))
            .unwrap_or_else(|e| panic!("{name}={value}: {e:?}"));
        assert!(defaults.differences(&one).is_empty(), "# {name}={value} is not the default");
    }
}

fn load_yaml(path: &Path) -> Vec<Yaml<'static>> {
    let text = std::fs::read_to_string(path).unwrap();
    let owned: &'static str = Box::leak(text.into_boxed_str());
    Yaml::load_from_str(owned).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn every_deployment_yaml_parses() {
    let mut files = Vec::new();
    yaml_files(&root().join("docker"), &mut files);
    yaml_files(&root().join("deploy"), &mut files);
    assert!(files.len() >= 12, "{files:?}");
    for file in files {
        let documents = load_yaml(&file);
        assert!(!documents.is_empty() && documents.iter().all(|d| d.as_mapping().is_some()), "{}", file.display());
    }
}

/// Every string scalar in a YAML tree, for "does this manifest mention X".
fn strings(node: &Yaml<'_>, out: &mut Vec<String>) {
    if let Some(text) = node.as_str() {
        out.push(text.to_owned());
    } else if let Some(number) = node.as_integer() {
        out.push(number.to_string());
    } else if let Some(sequence) = node.as_sequence() {
        sequence.iter().for_each(|n| strings(n, out));
    } else if let Some(mapping) = node.as_mapping() {
        for (key, value) in mapping {
            strings(key, out);
            strings(value, out);
        }
    }
}

/// `node[key]` of a mapping.
pub(crate) fn get<'a>(node: &'a Yaml<'static>, key: &str) -> &'a Yaml<'static> {
    let mapping = node.as_mapping().unwrap_or_else(|| panic!("no mapping around {key}"));
    mapping.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v).unwrap_or_else(|| panic!("no {key}"))
}

/// `node[key]` of a mapping, when it has that key.
pub(crate) fn lookup<'a>(node: &'a Yaml<'static>, key: &str) -> Option<&'a Yaml<'static>> {
    node.as_mapping()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// The string items of a sequence (a kustomization's `resources`).
fn string_list(node: &Yaml<'static>) -> Vec<String> {
    node.as_sequence().expect("a sequence").iter().map(|n| n.as_str().expect("a string").to_owned()).collect()
}

/// The entry `name` of a container's `env` list.
fn env_entry<'a>(container: &'a Yaml<'static>, name: &str) -> Option<&'a Yaml<'static>> {
    get(container, "env").as_sequence()?.iter().find(|e| lookup(e, "name").and_then(Yaml::as_str) == Some(name))
}

/// The value of a container's `env` entry `name` given as a `value`.
fn env_value<'a>(container: &'a Yaml<'static>, name: &str) -> &'a str {
    let entry = env_entry(container, name).unwrap_or_else(|| panic!("no env {name}"));
    get(entry, "value").as_str().unwrap_or_else(|| panic!("env {name} is not a quoted string"))
}

/// The only document of a manifest.
pub(crate) fn manifest(path: &str) -> Yaml<'static> {
    let mut documents = load_yaml(&root().join(path));
    assert_eq!(documents.len(), 1, "{path}");
    documents.pop().expect("a document")
}

/// The first container of a Deployment.
fn first_container<'a>(deployment: &'a Yaml<'static>) -> &'a Yaml<'static> {
    let containers = get(get(get(get(deployment, "spec"), "template"), "spec"), "containers");
    containers.as_sequence().and_then(|c| c.first()).expect("a container")
}

#[test]
fn compose_prod_hides_the_database_and_takes_its_password_from_the_environment() {
    let prod = load_yaml(&root().join("docker/docker-compose.prod.yml"));
    let services = get(&prod[0], "services");
    // Compose appends port lists: `ports: []` would keep the base file's 5432:5432; `!reset` removes it.
    match get(get(services, "postgres"), "ports") {
        Yaml::Tagged(tag, ports) => {
            assert_eq!(tag.suffix, "reset");
            assert!(ports.as_sequence().is_some_and(|p| p.is_empty()), "{ports:?}");
        }
        other => panic!("postgres ports are not reset: {other:?}"),
    }
    let password = get(get(get(services, "postgres"), "environment"), "POSTGRES_PASSWORD").as_str().unwrap();
    assert!(password.starts_with("${POSTGRES_PASSWORD:?"), "{password}");
    let url = get(get(get(services, "multibot"), "environment"), "DATABASE_URL").as_str().unwrap();
    assert!(url.contains(":${POSTGRES_PASSWORD:?") && !url.contains("password@"), "{url}");
}

#[tokio::test]
async fn manifests_name_the_ports_and_paths_the_program_serves() {
    let defaults = Settings::from_env(&|_| None).unwrap();
    let (health, webhook) = (defaults.health_check_port.to_string(), defaults.webhook_port.to_string());
    let mut deployment = Vec::new();
    load_yaml(&root().join("deploy/kubernetes/base/deployment.yaml")).iter().for_each(|d| strings(d, &mut deployment));
    for expected in ["/health/live", "/health/ready", health.as_str(), webhook.as_str()] {
        assert!(deployment.iter().any(|s| s == expected), "deployment.yaml lacks {expected}");
    }
    let mut compose = Vec::new();
    load_yaml(&root().join("docker/docker-compose.yml")).iter().for_each(|d| strings(d, &mut compose));
    for expected in [format!("{health}:{health}"), format!("{webhook}:{webhook}")] {
        assert!(compose.contains(&expected), "docker-compose.yml lacks {expected}");
    }
    let dockerfile = read("docker/Dockerfile");
    assert!(dockerfile.contains(&format!("EXPOSE {health} {webhook}")));
    // TLS to PostgreSQL and Redis trusts the system's store: the slim runtime image must carry one.
    assert!(dockerfile.contains("ca-certificates"), "the runtime image has no CA certificates");
    assert!(dockerfile.contains(r#"HEALTHCHECK"#) && dockerfile.contains(r#"CMD ["multibot", "healthcheck"]"#));
    // The probes' paths answer on a running application.
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = TempDir::new();
    let served = serve(&emu, dir.path(), Web::Off, &[], PluginRegistry::builtin()).await;
    for path in deployment.iter().filter(|s| s.starts_with("/health/")) {
        let status = reqwest::get(served.url(path)).await.unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
    // `multibot healthcheck`, as Docker runs it: 0 against the live server, 1 where nothing listens.
    // (In a blocking task: the server runs on this test's runtime.)
    let healthcheck = |url: String| {
        tokio::task::spawn_blocking(move || {
            let binary = env!("CARGO_BIN_EXE_multibot");
            Command::new(binary).args(["healthcheck", "--url", &url]).env_clear().status().unwrap().success()
        })
    };
    assert!(healthcheck(served.url("/health/live")).await.unwrap());
    assert!(!healthcheck("http://127.0.0.1:9/health/live".to_owned()).await.unwrap());
    served.stop().await;
}

#[test]
fn kubernetes_runs_one_replica_by_default_and_three_by_lease_in_the_overlay() {
    // `deploy/kubernetes` is the single replica; the overlay sits beside its base (Kustomize refuses an overlay
    // inside its base's directory).
    let top = manifest("deploy/kubernetes/kustomization.yaml");
    assert_eq!(string_list(get(&top, "resources")), ["base"]);
    let base = manifest("deploy/kubernetes/base/kustomization.yaml");
    for resource in string_list(get(&base, "resources")) {
        assert!(root().join("deploy/kubernetes/base").join(&resource).is_file(), "base lists {resource}");
    }
    let deployment = manifest("deploy/kubernetes/base/deployment.yaml");
    assert_eq!(get(get(&deployment, "spec"), "replicas").as_integer(), Some(1));
    assert_eq!(get(get(get(&deployment, "spec"), "strategy"), "type").as_str(), Some("Recreate"));
    assert!(env_entry(first_container(&deployment), "REPLICA_ID").is_none(), "the base runs every bot itself");

    let overlay = manifest("deploy/kubernetes/replicas/kustomization.yaml");
    let resources = string_list(get(&overlay, "resources"));
    assert!(resources.iter().any(|r| r == "../base"), "{resources:?}");
    let patches: Vec<String> = get(&overlay, "patches")
        .as_sequence()
        .expect("patches")
        .iter()
        .map(|p| get(p, "path").as_str().expect("a patch path").to_owned())
        .collect();
    for file in resources.iter().filter(|r| *r != "../base").chain(&patches) {
        assert!(root().join("deploy/kubernetes/replicas").join(file).is_file(), "the overlay lists {file}");
    }

    // The patch: three replicas, rolled one at a time (two processes at once are safe with leases).
    let patch = manifest("deploy/kubernetes/replicas/deployment-patch.yaml");
    assert_eq!(get(&patch, "kind").as_str(), Some("Deployment"));
    assert_eq!(get(get(&patch, "metadata"), "name"), get(get(&deployment, "metadata"), "name"));
    let spec = get(&patch, "spec");
    assert_eq!(get(spec, "replicas").as_integer(), Some(3));
    let strategy = get(spec, "strategy");
    assert_eq!(get(strategy, "type").as_str(), Some("RollingUpdate"));
    assert_eq!(get(get(strategy, "rollingUpdate"), "maxUnavailable").as_integer(), Some(1));
    assert_eq!(get(get(strategy, "rollingUpdate"), "maxSurge").as_integer(), Some(1));
    let container = first_container(&patch);
    assert_eq!(get(container, "name"), get(first_container(&deployment), "name"), "the patch names the container");

    // REPLICA_ID is the pod's name (or `auto`, its host name); DATABASE_URL comes from the Secret.
    let replica_id = env_entry(container, "REPLICA_ID").expect("REPLICA_ID");
    let from_pod_name = lookup(replica_id, "valueFrom")
        .and_then(|v| lookup(v, "fieldRef"))
        .is_some_and(|f| get(f, "fieldPath").as_str() == Some("metadata.name"));
    assert!(from_pod_name || lookup(replica_id, "value").and_then(Yaml::as_str) == Some("auto"), "{replica_id:?}");
    let source = get(get(env_entry(container, "DATABASE_URL").expect("DATABASE_URL"), "valueFrom"), "secretKeyRef");
    let secret = manifest("deploy/kubernetes/base/secret.yaml");
    assert_eq!(get(source, "name"), get(get(&secret, "metadata"), "name"));
    let url = get(get(&secret, "stringData"), get(source, "key").as_str().expect("a key")).as_str().unwrap();

    // What the program makes of it: a pod name, the Secret's URL and the overlay's values are accepted
    // (REPLICA_ID refuses SQLite).
    let values = [
        ("REPLICA_ID", "multibot-5d8f7c9b4-x2x7k"),
        ("DATABASE_URL", url),
        ("LEASE_TTL_SECONDS", env_value(container, "LEASE_TTL_SECONDS")),
        ("SHUTDOWN_TIMEOUT", env_value(container, "SHUTDOWN_TIMEOUT")),
    ];
    let settings = Settings::from_env(&|name| values.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(settings.lease_ttl.as_secs(), 6);
    // A reload under way, then the bots' in-flight updates and their tasks each get SHUTDOWN_TIMEOUT before the
    // leases are released: the pod must not be killed before.
    let grace = get(get(get(spec, "template"), "spec"), "terminationGracePeriodSeconds").as_integer().unwrap();
    assert!(3 * settings.shutdown_timeout.as_secs() < u64::try_from(grace).unwrap(), "grace {grace} s");

    // The disruption budget selects the Deployment's pods.
    let budget = manifest("deploy/kubernetes/replicas/poddisruptionbudget.yaml");
    assert!(resources.iter().any(|r| r == "poddisruptionbudget.yaml"), "{resources:?}");
    assert_eq!(get(&budget, "apiVersion").as_str(), Some("policy/v1"));
    assert_eq!(get(&budget, "kind").as_str(), Some("PodDisruptionBudget"));
    assert_eq!(get(get(&budget, "spec"), "maxUnavailable").as_integer(), Some(1));
    let selected = get(get(get(&budget, "spec"), "selector"), "matchLabels");
    assert_eq!(selected, get(get(get(&deployment, "spec"), "selector"), "matchLabels"));
    let pod_labels = get(get(get(get(&deployment, "spec"), "template"), "metadata"), "labels");
    for (key, value) in selected.as_mapping().expect("labels") {
        assert_eq!(lookup(pod_labels, key.as_str().unwrap()), Some(value), "the pods lack {key:?}");
    }
}

#[test]
fn compose_replicas_scale_without_fixed_ports_or_names() {
    let files = ["docker/docker-compose.yml", "docker/docker-compose.prod.yml", "docker/docker-compose.replicas.yml"];
    let loaded = files.map(manifest);
    let multibot: Vec<&Yaml<'static>> = loaded.iter().map(|f| get(get(f, "services"), "multibot")).collect();
    // A fixed name or host name would be the same in every container (and REPLICA_ID=auto reads the host name).
    for (file, service) in files.iter().zip(&multibot) {
        for key in ["container_name", "hostname"] {
            assert!(lookup(service, key).is_none(), "{file} sets {key}: --scale needs a name per container");
        }
    }
    let base_url = get(get(multibot[0], "environment"), "DATABASE_URL").as_str().unwrap();
    assert!(base_url.starts_with("postgresql://"), "{base_url}");
    let replicas = multibot[2];
    // Compose appends port lists: `!reset` removes the base file's 8080:8080 and 8443:8443.
    match get(replicas, "ports") {
        Yaml::Tagged(tag, ports) => {
            assert_eq!(tag.suffix, "reset");
            assert!(ports.as_sequence().is_some_and(|p| p.is_empty()), "{ports:?}");
        }
        other => panic!("multibot ports are not reset: {other:?}"),
    }
    let environment = get(replicas, "environment");
    assert_eq!(get(environment, "REPLICA_ID").as_str(), Some("auto"));
    let values = [
        ("LEASE_TTL_SECONDS", get(environment, "LEASE_TTL_SECONDS").as_str().expect("a quoted number")),
        ("SHUTDOWN_TIMEOUT", get(environment, "SHUTDOWN_TIMEOUT").as_str().expect("a quoted number")),
    ];
    let settings = Settings::from_env(&|name| values.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let grace = get(replicas, "stop_grace_period").as_str().expect("stop_grace_period");
    let grace: u64 = grace.strip_suffix('s').and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{grace}"));
    assert!(3 * settings.shutdown_timeout.as_secs() < grace, "stop_grace_period {grace} s");
    assert!(get(get(replicas, "deploy"), "replicas").as_integer().is_some_and(|n| n > 1));
}

#[test]
fn ci_runs_the_dockerfiles_build_command() {
    let dockerfile = read("docker/Dockerfile");
    let build = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .find(|l| l.starts_with("cargo build"))
        .expect("a RUN cargo build line");
    assert_eq!(build, "cargo build --release --locked -p multibot");
    assert!(read(".ci/run").contains(build), ".ci/run must run {build:?} and check-config the shipped config/");
}
