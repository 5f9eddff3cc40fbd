//! Static assets of the web UI (CSS, JS, icons, the vendored uPlot), compiled
//! into the binary: no CDN and no build step. URLs carry a content hash
//! (`/static/app.css?v=…`), so browsers may cache them for a year. This is
//! the table and its URLs; the `/static/{file}` handler (`assets.rs`) serves
//! them.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $path:literal, $ct:literal) => {
        Asset {
            name: $name,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("app.css", "assets/app.css", "text/css; charset=utf-8"),
    asset!("app.js", "assets/app.js", "text/javascript; charset=utf-8"),
    asset!(
        "dashboard.js",
        "assets/dashboard.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("favicon.svg", "assets/favicon.svg", "image/svg+xml"),
    asset!(
        "uPlot.iife.min.js",
        "assets/vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "uPlot.min.css",
        "assets/vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8"
    ),
];

/// Short content hash of each asset, in `ASSETS` order.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| hex::encode(&Sha256::digest(a.body)[..6]))
        .collect()
});

/// An asset and its version (content hash).
pub fn find(name: &str) -> Option<(&'static Asset, &'static str)> {
    ASSETS
        .iter()
        .position(|a| a.name == name)
        .map(|i| (&ASSETS[i], VERSIONS[i].as_str()))
}

/// The versioned URL of an asset, for templates (`{{ asset('app.css') }}`).
pub fn url(name: &str) -> String {
    match find(name) {
        Some((a, v)) => format!("/static/{}?v={v}", a.name),
        None => {
            tracing::error!(asset = name, "template names an unknown asset");
            format!("/static/{name}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_versioned_url() {
        for a in ASSETS {
            let u = url(a.name);
            assert!(u.starts_with(&format!("/static/{}?v=", a.name)), "{u}");
            assert!(!a.body.is_empty());
        }
    }
}
