//! TLS for `SSL_GET`, by rustls (ring provider): one client configuration
//! shared by every probe, and a new client session per connection.
//!
//! No certificate verification, as keepalived: its SSL_GET sets no verify
//! mode on its OpenSSL context (check_ssl.c; OpenSSL's client default is
//! SSL_VERIFY_NONE), so the handshake succeeds whatever certificate the
//! real server shows, even with an `SSL { ca ... }` block. vrlb accepts any
//! certificate chain too, but still checks the handshake's signatures (the
//! peer must own the key of the certificate it shows). It sends no SNI
//! (keepalived only with `enable_sni`): the server name is the target's
//! address, which rustls never sends. Client certificates (keepalived's
//! `SSL { certificate key }`) are not supported.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate; verifies handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // keepalived's SSL_GET accepts any certificate (SSL_VERIFY_NONE).
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration every SSL_GET probe uses (TLS 1.2 and 1.3).
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        // ring's provider supports the default versions: cannot fail.
        .expect("TLS 1.2 and 1.3 with ring")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A client session to `target` (no SNI: the name is the address).
pub fn session(
    config: &Arc<ClientConfig>,
    target: SocketAddr,
) -> Result<ClientConnection, rustls::Error> {
    ClientConnection::new(config.clone(), ServerName::IpAddress(target.ip().into()))
}
