//! Deployment files, checked without Docker: `.env.example` lists exactly the variables the program reads, with
//! its defaults; every YAML file under `docker/` and `deploy/` parses; the manifests name the ports and paths the
//! program really serves; the Dockerfile's build command is the one CI runs; `multibot healthcheck` works.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use botapi_emulator::{Emulator, EmulatorConfig};
use multibot::{config::Settings, plugins::PluginRegistry};
use saphyr::{LoadableYamlNode, Yaml};

use crate::helpers::{TempDir, Web, serve};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
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
    assert!(files.len() >= 7, "{files:?}");
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
fn get<'a>(node: &'a Yaml<'static>, key: &str) -> &'a Yaml<'static> {
    let mapping = node.as_mapping().unwrap_or_else(|| panic!("no mapping around {key}"));
    mapping.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v).unwrap_or_else(|| panic!("no {key}"))
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
    load_yaml(&root().join("deploy/kubernetes/deployment.yaml")).iter().for_each(|d| strings(d, &mut deployment));
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
