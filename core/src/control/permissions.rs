//! The host-side gate every viewer message passes: parse, rate limit, permission check. Plain logic with time
//! passed in.

use super::protocol::{parse_viewer_message, ControlErrorCode, Permissions, ViewerMessage};
use crate::ratelimit::TokenBucket;
use std::time::Instant;

/// Why the gate refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GateError {
    /// Machine-readable reason, sent back to the viewer.
    pub code: ControlErrorCode,
    /// The same, in words for people; from the other side, so escape it before printing it to a terminal.
    pub message: String,
}

/// Checks each message from one viewer against its current permissions and rate.
#[derive(Debug, Clone)]
pub struct ControlGate {
    permissions: Permissions,
    bucket: TokenBucket,
    /// Chat and clipboard reach the host app's user: a rate people can read, far below input's.
    text_bucket: TokenBucket,
    /// When a rate-limit refusal was last answered.
    last_flood_answer: Option<Instant>,
}

/// A viewer over its rate is told so at most once per this interval: answering every message of a flood would
/// let the flood set the pace of the host's replies.
pub const FLOOD_ANSWER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Control messages per second a viewer may send (pointer moves at 240 Hz fit).
pub const MESSAGES_PER_SECOND: f64 = 400.0;
/// Burst of control messages.
pub const MESSAGE_BURST: f64 = 800.0;
/// Chat and clipboard messages per second a viewer may send (each up to 4 KiB of chat or the clipboard limit).
pub const TEXT_MESSAGES_PER_SECOND: f64 = 5.0;
/// Burst of chat and clipboard messages.
pub const TEXT_MESSAGE_BURST: f64 = 20.0;

impl ControlGate {
    /// A gate with these permissions.
    pub fn new(permissions: Permissions, now: Instant) -> Self {
        ControlGate {
            permissions,
            bucket: TokenBucket::new(MESSAGE_BURST, MESSAGES_PER_SECOND, now),
            text_bucket: TokenBucket::new(TEXT_MESSAGE_BURST, TEXT_MESSAGES_PER_SECOND, now),
            last_flood_answer: None,
        }
    }

    /// Whether `refusal` is answered (a control message back to the viewer, an event to the app): every refusal
    /// is, except rate-limit ones, of which at most one per [`FLOOD_ANSWER_INTERVAL`] is.
    pub fn should_answer(&mut self, refusal: &GateError, now: Instant) -> bool {
        if refusal.code != ControlErrorCode::RateLimited {
            return true;
        }
        let due = self
            .last_flood_answer
            .is_none_or(|last| now.saturating_duration_since(last) >= FLOOD_ANSWER_INTERVAL);
        if due {
            self.last_flood_answer = Some(now);
        }
        due
    }

    /// The permissions in force.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// Changes the permissions; later messages are checked against the new ones.
    pub fn set_permissions(&mut self, permissions: Permissions) {
        self.permissions = permissions;
    }

    /// Parses, rate-limits and permission-checks one message.
    pub fn check(&mut self, bytes: &[u8], now: Instant) -> Result<ViewerMessage, GateError> {
        if !self.bucket.try_take(now) {
            return Err(GateError {
                code: ControlErrorCode::RateLimited,
                message: "too many control messages".into(),
            });
        }
        let message = parse_viewer_message(bytes).map_err(|e| GateError {
            code: e.code(),
            message: e.to_string(),
        })?;
        let denied = |what: &str| GateError {
            code: ControlErrorCode::PermissionDenied,
            message: format!("the host has not granted {what}"),
        };
        match &message {
            ViewerMessage::Input(_) if !self.permissions.control => Err(denied("control")),
            ViewerMessage::Clipboard { .. } if !self.permissions.clipboard => Err(denied("clipboard access")),
            ViewerMessage::Clipboard { .. } | ViewerMessage::Chat { .. } if !self.text_bucket.try_take(now) => {
                Err(GateError {
                    code: ControlErrorCode::RateLimited,
                    message: "too many chat or clipboard messages".into(),
                })
            }
            _ => Ok(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{encode, InputEvent};
    use std::time::Duration;

    #[test]
    fn a_flood_is_answered_once_a_second_and_other_refusals_always() {
        let t0 = Instant::now();
        let mut gate = ControlGate::new(Permissions::VIEW_ONLY, t0);
        let input = encode(&ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 }));
        let mut answered = 0;
        let mut denied_answered = 0;
        // Ten simulated seconds of 2,000 messages a second: five times the rate.
        for i in 0..20_000u64 {
            let now = t0 + Duration::from_micros(i * 500);
            let refusal = gate.check(input.as_bytes(), now).unwrap_err();
            if gate.should_answer(&refusal, now) {
                match refusal.code {
                    ControlErrorCode::RateLimited => answered += 1,
                    _ => denied_answered += 1,
                }
            }
        }
        assert!((10..=11).contains(&answered), "{answered} flood answers in 10 s");
        // Within the rate, every refusal is answered: 800 burst + 400/s for 10 s.
        assert!((4_700..=4_900).contains(&denied_answered), "{denied_answered}");
    }

    #[test]
    fn view_only_refuses_input_and_clipboard_but_allows_chat() {
        let now = Instant::now();
        let mut gate = ControlGate::new(Permissions::VIEW_ONLY, now);
        let input = encode(&ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 }));
        let clip = encode(&ViewerMessage::Clipboard { text: "x".into() });
        let chat = encode(&ViewerMessage::Chat { text: "hi".into() });
        assert_eq!(
            gate.check(input.as_bytes(), now).unwrap_err().code,
            ControlErrorCode::PermissionDenied
        );
        assert_eq!(
            gate.check(clip.as_bytes(), now).unwrap_err().code,
            ControlErrorCode::PermissionDenied
        );
        assert!(gate.check(chat.as_bytes(), now).is_ok());
        gate.set_permissions(Permissions::CONTROL);
        assert!(gate.check(input.as_bytes(), now).is_ok());
        assert_eq!(
            gate.check(clip.as_bytes(), now).unwrap_err().code,
            ControlErrorCode::PermissionDenied
        );
        gate.set_permissions(Permissions::FULL);
        assert!(gate.check(clip.as_bytes(), now).is_ok());
        // Revocation takes effect on the very next message.
        gate.set_permissions(Permissions::VIEW_ONLY);
        assert_eq!(
            gate.check(input.as_bytes(), now).unwrap_err().code,
            ControlErrorCode::PermissionDenied
        );
    }

    #[test]
    fn floods_are_rate_limited() {
        let now = Instant::now();
        let mut gate = ControlGate::new(Permissions::FULL, now);
        let input = encode(&ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 }));
        let passed = (0..2000).filter(|_| gate.check(input.as_bytes(), now).is_ok()).count();
        assert_eq!(passed, MESSAGE_BURST as usize);
        assert!(gate.check(input.as_bytes(), now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn chat_and_clipboard_have_a_readable_rate_of_their_own() {
        let now = Instant::now();
        let mut gate = ControlGate::new(Permissions::FULL, now);
        let chat = encode(&ViewerMessage::Chat { text: "spam".into() });
        let clip = encode(&ViewerMessage::Clipboard { text: "spam".into() });
        let passed = (0..100)
            .filter(|i| {
                gate.check(if i % 2 == 0 { &chat } else { &clip }.as_bytes(), now)
                    .is_ok()
            })
            .count();
        assert_eq!(passed, TEXT_MESSAGE_BURST as usize);
        let refused = gate.check(chat.as_bytes(), now).unwrap_err();
        assert_eq!(refused.code, ControlErrorCode::RateLimited);
        // Input is not held back by a chat flood.
        let input = encode(&ViewerMessage::Input(InputEvent::PointerMove { x: 0.5, y: 0.5 }));
        assert!(gate.check(input.as_bytes(), now).is_ok());
        // One more text message a fifth of a second later.
        let later = now + Duration::from_millis(200);
        assert!(gate.check(chat.as_bytes(), later).is_ok());
        assert!(gate.check(chat.as_bytes(), later).is_err());
    }
}
