//! QR codes for enrolment: the key URI drawn as an SVG that a page can inline.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::OtpError;

/// The smallest width and height of the image in pixels, so phone cameras read it on screen.
const MIN_SIZE_PX: u32 = 200;

/// `data` as a QR code in an inline SVG element: error correction level M (15%, what
/// authenticator enrolment codes commonly use), a quiet zone, black on white, at least
/// 200 by 200 pixels.
///
/// The XML declaration the renderer writes is removed, so the result starts with `<svg`
/// and can be placed straight into HTML. Fails with [`OtpError::Qr`] when the data is too
/// long for any QR code version.
pub fn qr_svg(data: &str) -> Result<String, OtpError> {
    let code = QrCode::with_error_correction_level(data, EcLevel::M).map_err(|_| OtpError::Qr)?;
    let mut document = code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(MIN_SIZE_PX, MIN_SIZE_PX)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let start = document.find("<svg").ok_or(OtpError::Qr)?;
    Ok(document.split_off(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyUri, Secret, TotpParams};

    #[test]
    fn renders_an_inline_svg_of_a_key_uri() {
        let key = KeyUri::new(
            "Twofold",
            "alice@example.com",
            Secret::generate().unwrap(),
            TotpParams::default(),
        )
        .unwrap();
        let svg = qr_svg(&key.to_uri()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("#000000"));
        assert!(svg.contains("#ffffff"));
        assert!(!svg.contains("<?xml"));
    }

    #[test]
    fn is_at_least_200_pixels_wide() {
        let svg = qr_svg("x").unwrap();
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(width >= 200, "{width}");
    }

    #[test]
    fn refuses_data_too_long_for_a_qr_code() {
        assert_eq!(qr_svg(&"x".repeat(5000)), Err(OtpError::Qr));
    }
}
