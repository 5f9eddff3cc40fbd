//! TLS for connections hop makes (Redis over `rediss://`): rustls with the
//! ring provider, installed once for the process (several providers are
//! linked in, so rustls cannot pick one by itself).

/// Installs ring as the process's rustls provider (once; later calls and an
/// already installed provider are fine).
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
