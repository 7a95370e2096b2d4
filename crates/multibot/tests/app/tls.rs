//! TLS as users meet it: the real binary talks to a Bot API served over HTTPS with a certificate from a private CA
//! (trusted through `SSL_CERT_FILE`), keeps its FSM in Redis over `rediss://` and its data in PostgreSQL with
//! `sslmode=verify-full`; an untrusted or mismatched certificate fails the bot with a message naming the cause.
//! Where the server offers HTTP/2 by ALPN, as `api.telegram.org` does, the bots share its connections.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use botapi_emulator::{Emulator, EmulatorConfig};
use multibot::telegram::BOTS_PER_CONNECTION;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{net::TcpListener, task::AbortHandle};
use tokio_rustls::TlsAcceptor;

use crate::{
    db::TestDb,
    helpers::{TempDir, eventually, service_available, token},
    process::{Process, wait_polling},
};

/// A certificate authority made for one test; its certificate is written to `dir/<name>.pem`.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: PathBuf,
}

/// A server's certificate chain and key, as PEM.
struct ServerCert {
    cert: String,
    key: String,
}

impl TestCa {
    fn new(dir: &TempDir, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("Multibot test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.write(&format!("{name}.pem"), &issuer.pem());
        TestCa { issuer, pem }
    }

    /// A certificate for the host `name`, signed by this CA.
    fn server(&self, name: &str) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A TLS front for a plain-HTTP server, as a load balancer would stand before it: HTTPS on a loopback port,
/// forwarded to `backend`. Stops accepting when dropped.
struct TlsFront {
    port: u16,
    accept: AbortHandle,
    /// The protocol chosen by ALPN on each connection accepted, in order ("none" where none was), and whether
    /// the connection is still open.
    protocols: Arc<parking_lot::Mutex<Vec<(String, bool)>>>,
}

impl TlsFront {
    /// A front that offers no protocol by ALPN (HTTP/1.1 then), as a self-hosted Bot API behind a plain proxy.
    async fn start(backend: SocketAddr, server: &ServerCert) -> TlsFront {
        TlsFront::offering(backend, server, &[]).await
    }

    /// A front that offers `alpn` (e.g. `h2`, `http/1.1`), as `api.telegram.org` does; the emulator behind it
    /// speaks what the client opens with.
    async fn offering(backend: SocketAddr, server: &ServerCert, alpn: &[&str]) -> TlsFront {
        let certs = CertificateDer::pem_slice_iter(server.cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(server.key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let mut config = config;
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let protocols = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let chosen = protocols.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, chosen) = (acceptor.clone(), chosen.clone());
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake: nothing to forward.
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let protocol = tls.get_ref().1.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned());
                    let index = {
                        let mut chosen = chosen.lock();
                        chosen.push((protocol.unwrap_or_else(|| "none".to_owned()), true));
                        chosen.len() - 1
                    };
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                    }
                    chosen.lock()[index].1 = false;
                });
            }
        })
        .abort_handle();
        TlsFront { port, accept, protocols }
    }

    /// The protocols chosen on the connections open now.
    fn open(&self) -> Vec<String> {
        self.protocols.lock().iter().filter(|(_, open)| *open).map(|(protocol, _)| protocol.clone()).collect()
    }

    /// `TELEGRAM_API_URL` for this front, by host name (the certificate names `localhost`).
    fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A Redis server of the test's own that accepts only TLS, on a free loopback port; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    /// `None` when this machine has no `redis-server`, or one built without TLS.
    async fn start(dir: &TempDir, server: &ServerCert) -> Option<TlsRedis> {
        let cert = dir.write("redis.crt", &server.cert);
        let key = dir.write("redis.key", &server.key);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut redis = TlsRedis { child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            // Exited at once: not built with TLS (or the port was taken).
            if redis.child.try_wait().ok().flatten().is_some() || tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(redis)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared PostgreSQL's server certificate when it has TLS on (`ssl = on`), to trust it by `sslrootcert`.
async fn postgres_tls_certificate() -> Option<PathBuf> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await.ok()?;
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut connection).await.ok()?;
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file").fetch_one(&mut connection).await.ok()?;
    let path = PathBuf::from(file);
    (ssl == "on" && std::fs::read(&path).is_ok()).then_some(path)
}

const FORM_BOT: &str = r#"
id: "tls_bot"
name: "TLS Bot"
token: "${STREAM_TOKEN}"
plugins:
  - name: "form"
  - name: "error_handler"
"#;

#[tokio::test]
async fn a_bot_runs_over_https_with_its_fsm_in_redis_and_its_data_in_postgres_over_tls() {
    let Some(pg_cert) = postgres_tls_certificate().await else {
        service_available("PostgreSQL with ssl = on", false);
        return;
    };
    let dir = TempDir::new();
    let ca = TestCa::new(&dir, "private-ca");
    let Some(redis) = TlsRedis::start(&dir, &ca.server("localhost")).await else {
        service_available("redis-server with TLS", false);
        return;
    };
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(50), "TLS Bot", "tls_bot").await.unwrap();
    let front = TlsFront::start(emu.addr(), &ca.server("localhost")).await;
    let Some(db) = TestDb::postgres().await else { return };
    let database_url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url.replace("@127.0.0.1:", "@localhost:"),
        pg_cert.display()
    );
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write("bots/tls.yaml", FORM_BOT);
    let ca_file = ca.pem.display().to_string();
    let redis_url = format!("rediss://localhost:{}/0", redis.port);
    let process = Process::start_with(
        &emu,
        &dir,
        &[
            ("TELEGRAM_API_URL", &front.url()),
            ("SSL_CERT_FILE", &ca_file),
            ("FSM_STORAGE", "redis"),
            ("REDIS_URL", &redis_url),
            ("DATABASE_URL", &database_url),
        ],
    );
    wait_polling(&emu, &bot).await;
    let user = emu.user(8200);
    for (said, expected) in
        [("/form", "What's your name?"), ("Alice", "How old are you?"), ("30", "Hello Alice, you are 30 years old!")]
    {
        user.send(&bot, said).await.unwrap();
        let reply = user.next_message_from(&bot).await.unwrap();
        assert_eq!(reply.text.as_deref(), Some(expected), "after {said:?}; output:\n{}", process.lines().join("\n"));
    }
    // Multibot's own connections to PostgreSQL are encrypted.
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'multibot' AND datname = current_database() AND ssl",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert!(encrypted >= 1, "no TLS connection from multibot");
    process.terminate();
    let (status, output) = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", output.join("\n"));
    assert!(!output.iter().any(|l| l.contains("TestTokenForMultibot")), "a token reached the logs");
}

/// Starts the binary against `front` and returns the line that reports the bot's failure.
async fn failure_line(emu: &Emulator, dir: &TempDir, front: &TlsFront, ca_file: Option<&str>) -> String {
    let mut vars = vec![("TELEGRAM_API_URL", front.url())];
    vars.extend(ca_file.map(|f| ("SSL_CERT_FILE", f.to_owned())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let process = Process::start_with(emu, dir, &vars);
    eventually(Duration::from_secs(30), "the bot to fail", || async {
        process.lines().iter().any(|l| l.contains("tls_bot") && l.contains("bot failed"))
    })
    .await;
    process.terminate();
    let (_, output) = process.wait(Duration::from_secs(30)).await;
    assert!(!output.iter().any(|l| l.contains("TestTokenForMultibot")), "a token reached the logs");
    output.into_iter().find(|l| l.contains("tls_bot") && l.contains("bot failed")).unwrap()
}

#[tokio::test]
async fn an_untrusted_or_mismatched_certificate_fails_the_bot_and_says_why() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    dir.write("bots/tls.yaml", FORM_BOT);
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emu.control().bot_named(&token(50), "TLS Bot", "tls_bot").await.unwrap();
    let ca = TestCa::new(&dir, "private-ca");
    let ca_file = ca.pem.display().to_string();

    // The CA is not trusted: SSL_CERT_FILE is unset.
    let front = TlsFront::start(emu.addr(), &ca.server("localhost")).await;
    let line = failure_line(&emu, &dir, &front, None).await;
    assert!(line.contains("certificate is not trusted"), "{line}");

    // Trusted, but issued for another name.
    let front = TlsFront::start(emu.addr(), &ca.server("api.example.org")).await;
    let line = failure_line(&emu, &dir, &front, Some(&ca_file)).await;
    assert!(line.contains("does not match the host name"), "{line}");

    // Nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let front = TlsFront { port: closed, accept: tokio::spawn(async {}).abort_handle(), protocols: Arc::default() };
    let line = failure_line(&emu, &dir, &front, Some(&ca_file)).await;
    assert!(line.contains("connection refused"), "{line}");
}

#[tokio::test]
async fn postgres_verify_full_refuses_an_untrusted_server_and_names_the_cause() {
    if !service_available("PostgreSQL with ssl = on", postgres_tls_certificate().await.is_some()) {
        return;
    }
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.replace("@127.0.0.1:", "@localhost:");
    let dir = TempDir::new();
    // Only another CA is trusted (SSL_CERT_FILE replaces the system's store), and no `sslrootcert`.
    let other = TestCa::new(&dir, "other-ca");
    let migrate = |database_url: String| {
        let output = Command::new(env!("CARGO_BIN_EXE_multibot"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("SSL_CERT_FILE", &other.pem)
            .output()
            .expect("multibot migrate runs");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, stderr) = migrate(format!("{url}?sslmode=verify-full"));
    assert!(!ok, "verify-full accepted an untrusted server");
    assert!(stderr.contains("certificate is not trusted"), "{stderr}");
    // `require` encrypts without checking the certificate, as libpq does.
    let (ok, stderr) = migrate(format!("{url}?sslmode=require"));
    assert!(ok, "{stderr}");
}

/// Starts `count` echo bots against a front offering `front_alpn`, with `TELEGRAM_API_HTTP=http`, has each answer
/// a message, and returns the protocols of the connections open while all of them poll. (At start several
/// connections may race; where HTTP/2 is chosen, the client closes all but one.)
async fn echo_through(front_alpn: &[&str], http: &str, count: u32) -> Vec<String> {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let mut bots = Vec::new();
    for n in 0..count {
        let id = format!("echo_{n}");
        bots.push(emu.control().bot_named(&token(60 + n), "Echo", &id).await.unwrap());
        let yaml =
            format!("id: \"{id}\"\nname: \"Echo\"\ntoken: \"{}\"\nplugins:\n  - name: \"echo\"\n", token(60 + n));
        dir.write(&format!("bots/{id}.yaml"), &yaml);
    }
    let ca = TestCa::new(&dir, "private-ca");
    let front = TlsFront::offering(emu.addr(), &ca.server("localhost"), front_alpn).await;
    let ca_file = ca.pem.display().to_string();
    let process = Process::start_with(
        &emu,
        &dir,
        &[("TELEGRAM_API_URL", &front.url()), ("SSL_CERT_FILE", &ca_file), ("TELEGRAM_API_HTTP", http)],
    );
    for bot in &bots {
        wait_polling(&emu, bot).await;
    }
    let user = emu.user(8300);
    for bot in &bots {
        user.send(bot, "/echo over TLS").await.unwrap();
    }
    for bot in &bots {
        let reply = user.next_message_from(bot).await.unwrap();
        assert_eq!(reply.text.as_deref(), Some("over TLS"), "output:\n{}", process.lines().join("\n"));
    }
    // Each bot is back in its long poll once its reply is sent: wait for every poll to be open again.
    eventually(Duration::from_secs(10), "every bot's long poll", || async {
        let polling = reqwest::get(format!("{}/control/bots", emu.api_url())).await.unwrap();
        let polling: serde_json::Value = polling.json().await.unwrap();
        polling.as_array().is_some_and(|bots| bots.iter().filter(|b| b["polling"] == true).count() == count as usize)
    })
    .await;
    let open = front.open();
    process.terminate();
    let (status, output) = process.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", output.join("\n"));
    open
}

#[tokio::test]
async fn where_the_server_offers_http2_the_bots_share_its_connections() {
    // Offered h2 and HTTP/1.1 (as api.telegram.org): a full group of bots is served by one HTTP/2 connection, their
    // long polls and their calls alike.
    let group = BOTS_PER_CONNECTION as u32;
    let protocols = echo_through(&["h2", "http/1.1"], "auto", group).await;
    assert_eq!(protocols, ["h2"], "open connections and their protocols");
    // Told to speak HTTP/1.1, the client does not offer h2: each long poll holds a connection of its own.
    let protocols = echo_through(&["h2", "http/1.1"], "1.1", 3).await;
    assert!(protocols.len() >= 3 && protocols.iter().all(|p| p == "http/1.1"), "{protocols:?}");
    // A server that offers nothing (a self-hosted Bot API behind a plain TLS proxy) gets HTTP/1.1 from `auto`.
    let protocols = echo_through(&[], "auto", 3).await;
    assert!(protocols.len() >= 3 && protocols.iter().all(|p| p == "none"), "{protocols:?}");
}

#[tokio::test]
async fn over_plain_http_the_bots_speak_http2_when_told_and_http1_by_default() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("bots")).unwrap();
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let bot = emu.control().bot_named(&token(70), "Echo", "echo_70").await.unwrap();
    dir.write(
        "bots/echo.yaml",
        &format!("id: \"echo_70\"\nname: \"Echo\"\ntoken: \"{}\"\nplugins:\n  - name: \"echo\"\n", token(70)),
    );
    for (user, setting, version) in [(8400, "2", "HTTP/2.0"), (8401, "auto", "HTTP/1.1")] {
        let process = Process::start_with(&emu, &dir, &[("TELEGRAM_API_HTTP", setting)]);
        wait_polling(&emu, &bot).await;
        let user = emu.user(user);
        user.send(&bot, &format!("/echo over {setting}")).await.unwrap();
        let reply = user.next_message_from(&bot).await.unwrap();
        assert_eq!(reply.text, Some(format!("over {setting}")), "output:\n{}", process.lines().join("\n"));
        process.terminate();
        let (status, output) = process.wait(Duration::from_secs(30)).await;
        assert!(status.success(), "{}", output.join("\n"));
        // Every call of this run, polls and the reply alike, came over `version`.
        let calls = emu.control().calls(Some(&bot), None).await.unwrap();
        let sent = calls.iter().rev().find(|c| c.method == "sendMessage").unwrap();
        assert_eq!(sent.http, version, "{sent:?}");
        let last_poll = calls.iter().rev().find(|c| c.method == "getUpdates").unwrap();
        assert_eq!(last_poll.http, version, "{last_poll:?}");
    }
}
