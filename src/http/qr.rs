//! QR codes of short URLs, drawn on the server: `qr.svg` (vector) and
//! `qr.png` (`?size=` pixels, 64–2048, default 512), for the API and the UI.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use qrcode::{Color, EcLevel, QrCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::access::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppQuery, bounded_param, parse_bool};
use crate::state::AppState;

/// A binary body in the document (QR codes, and the streamed exports'
/// `application/octet-stream` alternative): a `binary` string, which
/// generators hand to their users as a file or blob.
pub struct BinaryBody;

impl utoipa::PartialSchema for BinaryBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for BinaryBody {}

/// Modules of light border around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrPngParams {
    /// Width and height in pixels, 64–2048 (default 512).
    #[param(value_type = Option<i64>, minimum = 64, maximum = 2048)]
    pub size: Option<String>,
    /// `true` (or `1`) to answer as a download (Content-Disposition: attachment).
    #[param(value_type = Option<bool>)]
    pub download: Option<String>,
}

/// The SVG scales to its viewer, so it has no size.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrSvgParams {
    /// `true` (or `1`) to answer as a download (Content-Disposition: attachment).
    #[param(value_type = Option<bool>)]
    pub download: Option<String>,
}

fn code_for(text: &str) -> Result<QrCode, ApiError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|_| {
        ApiError::bad_request("qr_too_long", "this short URL is too long for a QR code")
    })
}

/// The QR code as SVG, scaled by the viewer.
pub fn svg(text: &str) -> Result<String, ApiError> {
    let code = code_for(text)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .quiet_zone(true)
        .min_dimensions(256, 256)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// The QR code as an 8-bit greyscale PNG of at most `size` pixels a side
/// (whole pixels per module, so it stays sharp).
pub fn png(text: &str, size: u32) -> Result<Vec<u8>, ApiError> {
    let code = code_for(text)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side_modules = modules + 2 * QUIET_ZONE;
    let scale = (size as usize / side_modules).max(1);
    let side = side_modules * scale;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for y in my * scale..(my + 1) * scale {
            pixels[y * side + mx * scale..y * side + (mx + 1) * scale].fill(0);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let encoded = encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels).and_then(|_| w.finish()));
    encoded.map_err(|e| {
        tracing::error!(error = %e, "encoding a QR PNG failed");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    Ok(out)
}

fn parse_size(s: Option<&str>) -> Result<u32, ApiError> {
    Ok(bounded_param("size", s, 512, 64..=2048)? as u32)
}

fn image(body: Vec<u8>, content_type: &'static str, name: String, download: bool) -> Response {
    let disposition = if download {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("inline; filename=\"{name}\"")
    };
    (
        [
            (CONTENT_TYPE, content_type.to_owned()),
            (CACHE_CONTROL, "private, max-age=300".to_owned()),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, operation_id = "get_link_qr_svg", path = "/links/{slug}/qr.svg", tag = "links",
    params(("slug" = String, Path, description = "The link's slug"), QrSvgParams),
    responses(
        (status = 200, description = "QR code of the short URL, sent as image/svg+xml (application/octet-stream is listed for generators that only read generic binary bodies)",
            content((inline(BinaryBody) = "image/svg+xml"), (inline(BinaryBody) = "application/octet-stream"))),
        (status = 400, description = "Invalid query parameter", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn link_qr_svg(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<QrSvgParams>,
) -> Result<Response, ApiError> {
    let download = parse_bool("download", params.download.as_deref())?;
    let link = access::link(&state, &caller, &slug).await?;
    let body = svg(&state.short_url(&link.slug))?;
    Ok(image(
        body.into_bytes(),
        "image/svg+xml",
        format!("{}.svg", link.slug),
        download,
    ))
}

#[utoipa::path(get, operation_id = "get_link_qr_png", path = "/links/{slug}/qr.png", tag = "links",
    params(("slug" = String, Path, description = "The link's slug"), QrPngParams),
    responses(
        (status = 200, description = "QR code of the short URL, sent as image/png (application/octet-stream is listed for generators that only read generic binary bodies)",
            content((inline(BinaryBody) = "image/png"), (inline(BinaryBody) = "application/octet-stream"))),
        (status = 400, description = "Invalid size or download flag", body = ErrorBody),
        (status = 401, description = "Bad or missing credentials", body = ErrorBody),
        (status = 404, description = "No such link for these credentials", body = ErrorBody),
    ),
    security(("api_key" = []), ("link_secret" = [])))]
pub async fn link_qr_png(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    AppQuery(params): AppQuery<QrPngParams>,
) -> Result<Response, ApiError> {
    let size = parse_size(params.size.as_deref())?;
    let download = parse_bool("download", params.download.as_deref())?;
    let link = access::link(&state, &caller, &slug).await?;
    let body = png(&state.short_url(&link.slug), size)?;
    Ok(image(
        body,
        "image/png",
        format!("{}.png", link.slug),
        download,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_a_square_greyscale_image_with_a_quiet_zone() {
        let bytes = png("http://localhost:8080/abc", 512).unwrap();
        let decoder = ::png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, info.height);
        assert!(info.width <= 512 && info.width >= 256, "{}", info.width);
        // Top-left corner is quiet zone (white); the finder pattern starts
        // right after it (black).
        let side = info.width as usize;
        let scale = side / (21 + 2 * QUIET_ZONE);
        assert_eq!(buf[0], 255);
        let finder = QUIET_ZONE * scale;
        assert_eq!(buf[finder * side + finder], 0);
    }

    #[test]
    fn svg_is_an_svg() {
        let s = svg("http://localhost:8080/abc").unwrap();
        assert!(s.contains("<svg") && s.contains("#000000"));
        assert!(parse_size(Some("10")).is_err());
        assert_eq!(parse_size(None).unwrap(), 512);
    }
}
