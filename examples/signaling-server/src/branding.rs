//! The operator's branding for the served pages: product name, colours, logo and the words of the customer's
//! consent prompt, read from a JSON file (`--branding FILE`), checked, and served as `/branding.json` and
//! `/branding/logo.png`. The web viewer and the browser host apply it; without a file they show peerdesk's own.
//!
//! ```json
//! {
//!   "product_name": "Acme Support",
//!   "accent_color": "#c0392b",
//!   "background_color": "#1b1b1b",
//!   "consent_text": "{name} from Acme Support asks to see your screen.",
//!   "logo_file": "acme.png"
//! }
//! ```
//!
//! Every field is optional. Text is shown with `textContent` (never parsed as HTML); colours must be `#rrggbb`;
//! the logo must be a PNG (checked by its signature) of at most [`MAX_LOGO_BYTES`], given relative to the JSON file.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest logo served.
pub const MAX_LOGO_BYTES: usize = 256 * 1024;
/// Longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 48;
/// Longest consent wording, in characters.
pub const MAX_CONSENT_CHARS: usize = 300;

/// What the pages show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Branding {
    /// Shown as the page title and heading. Default `peerdesk`.
    pub product_name: String,
    /// Header and button colour, `#rrggbb`. Default `#12161a`.
    pub accent_color: String,
    /// Page background, `#rrggbb`. Default `#1d2228`.
    pub background_color: String,
    /// The customer's consent prompt in the browser host; `{name}` becomes the technician's (unverified) name.
    pub consent_text: String,
    /// Whether `/branding/logo.png` serves a logo.
    pub has_logo: bool,
    #[serde(skip)]
    logo_png: Option<Vec<u8>>,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            product_name: "peerdesk".into(),
            accent_color: "#12161a".into(),
            background_color: "#1d2228".into(),
            consent_text: "{name} asks to see your screen. Allow (view only)?".into(),
            has_logo: false,
            logo_png: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrandingFile {
    product_name: Option<String>,
    accent_color: Option<String>,
    background_color: Option<String>,
    consent_text: Option<String>,
    logo_file: Option<String>,
}

/// Why a branding file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrandingError {
    /// The file or the logo could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid JSON, or an unknown field.
    #[error("invalid branding file: {0}")]
    Json(#[from] serde_json::Error),
    /// A field breaks its rule.
    #[error("invalid branding field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Branding {
    /// Reads and checks `path`.
    ///
    /// # Errors
    ///
    /// [`BrandingError`] names the file or the field at fault.
    pub fn load(path: &Path) -> Result<Branding, BrandingError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| BrandingError::Io { path, source }
        };
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let file: BrandingFile = serde_json::from_str(&text)?;
        let mut branding = Branding::default();
        if let Some(name) = file.product_name {
            branding.product_name = checked_text("product_name", name, MAX_NAME_CHARS)?;
        }
        if let Some(color) = file.accent_color {
            branding.accent_color = checked_color("accent_color", color)?;
        }
        if let Some(color) = file.background_color {
            branding.background_color = checked_color("background_color", color)?;
        }
        if let Some(text) = file.consent_text {
            branding.consent_text = checked_text("consent_text", text, MAX_CONSENT_CHARS)?;
        }
        if let Some(logo) = file.logo_file {
            let logo_path = path.parent().unwrap_or(Path::new(".")).join(logo);
            let bytes = std::fs::read(&logo_path).map_err(io(&logo_path))?;
            if bytes.len() > MAX_LOGO_BYTES {
                return Err(field("logo_file", format!("over {MAX_LOGO_BYTES} bytes")));
            }
            if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
                return Err(field("logo_file", "not a PNG file".into()));
            }
            branding.logo_png = Some(bytes);
            branding.has_logo = true;
        }
        Ok(branding)
    }

    /// The logo's PNG bytes, if any.
    pub fn logo_png(&self) -> Option<&[u8]> {
        self.logo_png.as_deref()
    }
}

fn field(field: &'static str, reason: String) -> BrandingError {
    BrandingError::Field { field, reason }
}

fn checked_text(name: &'static str, text: String, max_chars: usize) -> Result<String, BrandingError> {
    if text.chars().count() > max_chars {
        return Err(field(name, format!("over {max_chars} characters")));
    }
    if text.trim().is_empty() {
        return Err(field(name, "empty".into()));
    }
    // The same cleaning as names in prompts: no control, format or bidi-override characters.
    Ok(peerdesk::text::printable(&text).into_owned())
}

fn checked_color(name: &'static str, color: String) -> Result<String, BrandingError> {
    let ok = color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(color)
    } else {
        Err(field(
            name,
            format!("{:?} is not #rrggbb", peerdesk::text::printable(&color)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str, logo: Option<&[u8]>) -> Result<Branding, BrandingError> {
        let dir = std::env::temp_dir().join(format!("peerdesk-branding-{}-{}", std::process::id(), json.len()));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(bytes) = logo {
            std::fs::write(dir.join("logo.png"), bytes).unwrap();
        }
        std::fs::write(dir.join("branding.json"), json).unwrap();
        let result = Branding::load(&dir.join("branding.json"));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn a_full_file_is_read_and_a_partial_one_keeps_the_defaults() {
        let png = b"\x89PNG\r\n\x1a\n rest of a png";
        let b = load(
            r##"{"product_name":"Acme Support","accent_color":"#c0392b","consent_text":"{name} asks.","logo_file":"logo.png"}"##,
            Some(png),
        )
        .unwrap();
        assert_eq!(b.product_name, "Acme Support");
        assert_eq!(b.accent_color, "#c0392b");
        assert_eq!(b.background_color, Branding::default().background_color);
        assert!(b.has_logo);
        assert_eq!(b.logo_png(), Some(&png[..]));
        let json = serde_json::to_string(&b).unwrap();
        assert!(!json.contains("rest of a png"), "the logo is served on its own");
        assert_eq!(load("{}", None).unwrap(), Branding::default());
    }

    #[test]
    fn bad_fields_are_refused_with_their_name() {
        let refused = |json: &str, logo: Option<&[u8]>| match load(json, logo) {
            Err(BrandingError::Field { field, .. }) => field,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(refused(r#"{"accent_color":"red"}"#, None), "accent_color");
        assert_eq!(refused(r##"{"background_color":"#12345g"}"##, None), "background_color");
        assert_eq!(
            refused(&format!(r#"{{"product_name":"{}"}}"#, "x".repeat(49)), None),
            "product_name"
        );
        assert_eq!(
            refused(r#"{"logo_file":"logo.png"}"#, Some(b"<svg onload=alert(1)>")),
            "logo_file"
        );
        assert!(matches!(load(r#"{"script":"x"}"#, None), Err(BrandingError::Json(_))));
        let cleaned = load(r#"{"product_name":"Acme\u202eevil"}"#, None).unwrap();
        assert_eq!(cleaned.product_name, "Acmeevil");
    }
}
