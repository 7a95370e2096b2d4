//! TLS trust and the causes of failed connections.
//!
//! Every outgoing connection (the Bot API, PostgreSQL, Redis) uses rustls with the `ring` provider. The Bot API
//! client trusts Mozilla's root certificates, bundled in the binary, and the system's store; PostgreSQL and Redis
//! trust the system's store. `SSL_CERT_FILE` (a PEM file) and `SSL_CERT_DIR` replace the system's store, as they
//! do for OpenSSL: point `SSL_CERT_FILE` at a bundle holding a private CA to trust it. [`check_trust_settings`]
//! refuses a `SSL_CERT_FILE` that holds no certificate, at start, instead of every connection failing later.
//!
//! [`describe`] turns a connection error into one line that names its cause (certificate not trusted, name
//! mismatch, refused, timed out, DNS), by walking the error's source chain.

use std::{error::Error, io, path::Path};

use anyhow::{Context, bail};
use rustls::{CertificateError, pki_types::CertificateDer, pki_types::pem::PemObject};

/// Installs the `ring` provider as the process's rustls provider (the libraries that build their own TLS
/// configuration use it); a second call is a no-op.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Checks `SSL_CERT_FILE` and `SSL_CERT_DIR` when they are set: the file must hold at least one PEM certificate,
/// each directory must exist.
pub fn check_trust_settings(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    if let Some(file) = lookup("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        let certs = certificates(Path::new(&file)).with_context(|| format!("SSL_CERT_FILE={file}"))?;
        if certs == 0 {
            bail!("SSL_CERT_FILE={file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
        }
    }
    if let Some(dirs) = lookup("SSL_CERT_DIR").filter(|d| !d.is_empty()) {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            if !Path::new(dir).is_dir() {
                bail!("SSL_CERT_DIR: {dir} is not a directory");
            }
        }
    }
    Ok(())
}

/// The number of PEM certificates in `path`.
fn certificates(path: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for cert in CertificateDer::pem_file_iter(path).context("cannot read the file")? {
        cert.context("not a valid PEM certificate")?;
        count += 1;
    }
    Ok(count)
}

/// `error`'s message followed by the cause found in its source chain, e.g. "error sending request: the server's
/// TLS certificate is not trusted (unknown issuer; ...)". Callers strip URLs with secrets first
/// (`reqwest::Error::without_url`).
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let top = error.to_string();
    match cause(error) {
        Some(cause) if !top.contains(&cause) => format!("{top}: {cause}"),
        _ => top,
    }
}

/// The most telling cause in `error`'s chain: a TLS problem, then a refused, reset or timed-out connection, a
/// failed DNS lookup, else the innermost message.
fn cause(error: &(dyn Error + 'static)) -> Option<String> {
    let chain: Vec<&(dyn Error + 'static)> = chain(error);
    if let Some(tls) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        return Some(tls_cause(tls));
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some("connection refused".to_owned()),
                io::ErrorKind::ConnectionReset => return Some("connection reset by the server".to_owned()),
                io::ErrorKind::TimedOut => return Some("timed out".to_owned()),
                _ => {}
            }
        }
        let text = e.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            let innermost = chain.last().map(|e| e.to_string()).unwrap_or_default();
            return Some(format!("DNS lookup failed ({innermost})"));
        }
        if text.contains("tls handshake eof") {
            return Some("the server closed the connection during the TLS handshake (is it a TLS server?)".to_owned());
        }
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return Some("timed out".to_owned());
        }
    }
    chain.last().filter(|_| chain.len() > 1).map(|e| e.to_string())
}

/// `error` and its sources. `io::Error::source` skips the error it wraps (it returns that error's source), so a
/// wrapped error is taken from `get_ref` instead.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        chain.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
        if chain.len() > 32 {
            break;
        }
    }
    chain
}

fn tls_cause(error: &rustls::Error) -> String {
    let certificate = |problem: &str| format!("the server's TLS certificate {problem}");
    match error {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => certificate(
                "is not trusted (unknown issuer; to trust a private CA, set SSL_CERT_FILE to a PEM file that holds it)",
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                certificate("does not match the host name (name mismatch)")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => certificate("has expired"),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                certificate("is not valid yet (check the clock)")
            }
            CertificateError::Revoked => certificate("is revoked"),
            CertificateError::BadSignature | CertificateError::BadEncoding => certificate("is malformed"),
            other => certificate(&format!("was rejected ({other:?})")),
        },
        other => format!("TLS error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn an_unknown_issuer_wrapped_in_io_errors_is_named() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, tls);
        let outer = anyhow::Error::new(io).context("error sending request");
        let text = describe(outer.as_ref());
        assert!(text.starts_with("error sending request: the server's TLS certificate is not trusted"), "{text}");
        assert!(text.contains("SSL_CERT_FILE"), "{text}");
    }

    #[test]
    fn a_refused_connection_is_named() {
        let io = io::Error::from(io::ErrorKind::ConnectionRefused);
        let outer = anyhow::Error::new(io).context("error sending request");
        assert_eq!(describe(outer.as_ref()), "error sending request: connection refused");
    }

    #[test]
    fn an_empty_certificate_file_is_refused_at_start() {
        let dir = TempDir::new("tls");
        let path = dir.write("empty.pem", "not a certificate\n").display().to_string();
        let error = check_trust_settings(|name| (name == "SSL_CERT_FILE").then(|| path.clone())).unwrap_err();
        assert!(format!("{error:#}").contains("holds no PEM certificate"), "{error:#}");
        let missing = dir.path().join("missing.pem").display().to_string();
        let error = check_trust_settings(|name| (name == "SSL_CERT_FILE").then(|| missing.clone())).unwrap_err();
        assert!(format!("{error:#}").contains("cannot read the file"), "{error:#}");
        assert!(check_trust_settings(|_| None).is_ok());
    }
}
