//! Text from the other side, made safe to show: names in a consent prompt, chat and clipboard on a terminal, log
//! fields. A remote party must not be able to move the cursor, clear the screen, set the clipboard (OSC 52),
//! forge a line, or reverse how a name reads (U+202E).

use std::borrow::Cow;

/// Whether `c` changes how text around it is laid out or read rather than being shown: control characters (C0,
/// DEL, C1), format characters (bidirectional overrides and isolates, zero-width characters, the soft hyphen,
/// tag characters) and the line and paragraph separators.
pub fn is_invisible_or_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `text` without control, format and separator characters ([`is_invisible_or_control`]): for one-line fields
/// such as names and reasons. Borrows when there is nothing to remove.
///
/// ```
/// assert_eq!(peerdesk::text::printable("Alex\u{202E}troppuS\n"), "AlextroppuS");
/// assert_eq!(peerdesk::text::printable("Alex"), "Alex");
/// ```
pub fn printable(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_invisible_or_control) {
        Cow::Owned(text.chars().filter(|&c| !is_invisible_or_control(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` with every control, format and separator character written as a visible escape (`\u{1b}`), keeping
/// line breaks and tabs when `keep_newlines` (multi-line chat or clipboard shown on a terminal). Borrows when
/// there is nothing to escape.
///
/// ```
/// let shown = peerdesk::text::escape_for_terminal("hi\u{1b}]52;c;ZXZpbA==\u{7}\nthere", true);
/// assert_eq!(shown, "hi\\u{1b}]52;c;ZXZpbA==\\u{7}\nthere");
/// ```
pub fn escape_for_terminal(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_newlines && (c == '\n' || c == '\t');
    if !text.chars().any(|c| is_invisible_or_control(c) && !kept(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_invisible_or_control(c) && !kept(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 from the other side, at most 4 KiB of it (every handshake field is far smaller).
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    (text.len() <= 4096)
        .then(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_changing_characters_are_caught() {
        for c in [
            '\u{1b}',
            '\u{7f}',
            '\u{9b}',
            '\u{202E}',
            '\u{2066}',
            '\u{200B}',
            '\u{2028}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert!(is_invisible_or_control(c), "{:?}", c);
        }
        for c in ['a', 'é', '中', ' ', '😀', '\u{05D0}'] {
            assert!(!is_invisible_or_control(c), "{:?}", c);
        }
    }

    #[test]
    fn escapes_leave_no_raw_control_character() {
        let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\u{9b}31m\u{202E}";
        let shown = escape_for_terminal(hostile, false);
        assert!(!shown.chars().any(is_invisible_or_control), "{shown:?}");
        assert!(matches!(escape_for_terminal("plain text", true), Cow::Borrowed(_)));
        assert_eq!(escape_for_terminal("a\nb", false), "a\\u{a}b");
    }
}
