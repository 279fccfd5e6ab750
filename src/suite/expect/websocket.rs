//! `expect.websocket`: every WebSocket session of the case is upgraded (a 101 whose
//! `Sec-WebSocket-Accept` answers the key sent; the engine checks that) and gets these
//! replies, one per message of `request.websocket`, in order. Upstream:
//! kubernetes-sigs/gateway-api v1.3.0, `conformance/tests/httproute-backend-protocol-websocket.go`
//! (HTTPRouteBackendProtocolWebSocket), which sends a text and a binary message and
//! expects each echoed.

use super::each_response::{self, EachResponse};
use super::response::{Check, Judge, JudgeError, describe_response};
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::suite::model::{WebSocketExpectSpec, WebSocketMessageSpec};
use crate::traffic::{Sample, WebSocketMessage};

/// The status of an accepted upgrade (RFC 6455 section 4.2.2).
const SWITCHING_PROTOCOLS: u16 = 101;

/// The replies every session must get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedWebSocket {
    pub replies: Vec<WebSocketMessage>,
}

impl ExpectedWebSocket {
    /// `sent` is what `request.websocket` sends, `None` when the URL is not `ws://` or
    /// `wss://`; `at` locates a field under `expect.websocket`.
    pub(super) fn load(
        spec: &WebSocketExpectSpec,
        sent: Option<&[WebSocketMessage]>,
        at: &dyn Fn(&str) -> SourceLocation,
    ) -> Result<Self, SuiteError> {
        let Some(sent) = sent else {
            return Err(SuiteError::Invalid {
                location: at(""),
                message: "`websocket` needs a ws:// or wss:// request URL".into(),
            });
        };
        let replies = load_messages(&spec.replies, &|f| at(&format!("replies{f}")))?;
        if replies.len() != sent.len() {
            return Err(SuiteError::Invalid {
                location: at("replies"),
                message: format!(
                    "{} replies for {} messages: one reply is read after each message of `request.websocket.messages`",
                    replies.len(),
                    sent.len()
                ),
            });
        }
        Ok(ExpectedWebSocket { replies })
    }
}

/// WebSocket messages as a suite writes them; `at` locates `[i]`-suffixed fields of the
/// list.
pub(in crate::suite) fn load_messages(
    specs: &[WebSocketMessageSpec],
    at: &dyn Fn(&str) -> SourceLocation,
) -> Result<Vec<WebSocketMessage>, SuiteError> {
    specs
        .iter()
        .enumerate()
        .map(|(index, spec)| match (&spec.text, &spec.binary) {
            (Some(text), None) => Ok(WebSocketMessage::Text(text.clone())),
            (None, Some(bytes)) => Ok(WebSocketMessage::Binary(bytes.clone())),
            (Some(_), Some(_)) | (None, None) => Err(SuiteError::Invalid {
                location: at(&format!("[{index}]")),
                message: "a WebSocket message is exactly one of `text` and `binary`".into(),
            }),
        })
        .collect()
}

impl Check for ExpectedWebSocket {
    /// An upgraded session that echoes is the whole point of the case.
    fn readiness_rank(&self) -> u8 {
        0
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        self.failure(sample).is_none()
    }

    fn unready(&self, sample: &Sample<'_>) -> Option<String> {
        self.failure(sample)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        each_response::judge(self)
    }
}

impl EachResponse for ExpectedWebSocket {
    fn failure(&self, sample: &Sample<'_>) -> Option<String> {
        if sample.status != Some(SWITCHING_PROTOCOLS) {
            return Some(format!(
                "the upgrade was answered {}, expected {SWITCHING_PROTOCOLS}",
                describe_response(sample)
            ));
        }
        let got = sample.websocket_replies;
        if let Some((index, (reply, expected))) = got
            .iter()
            .zip(&self.replies)
            .enumerate()
            .find(|(_, (reply, expected))| reply != expected)
        {
            return Some(format!(
                "reply {} was {reply}, expected {expected}",
                index + 1
            ));
        }
        (got.len() != self.replies.len())
            .then(|| format!("{} replies, expected {}", got.len(), self.replies.len()))
    }

    fn pass_attribute(&self) -> String {
        format!(
            "every WebSocket session upgraded and got its {} replies",
            self.replies.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::manifest::SourceLocation;

    fn sample(status: u16, replies: &[WebSocketMessage]) -> Sample<'_> {
        Sample {
            status: Some(status),
            identity: None,
            latency: Duration::from_millis(1),
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: Default::default(),
            body: None,
            websocket_replies: replies,
        }
    }

    fn at(field: &str) -> SourceLocation {
        SourceLocation::new(
            std::path::Path::new(field),
            crate::manifest::yaml::Position { line: 1, column: 1 },
        )
    }

    #[test]
    fn replies_must_match_in_order_and_number() {
        let text = WebSocketMessage::Text("hi".into());
        let binary = WebSocketMessage::Binary(vec![1, 2]);
        let expected = ExpectedWebSocket {
            replies: vec![text.clone(), binary.clone()],
        };
        assert_eq!(
            expected.failure(&sample(101, &[text.clone(), binary.clone()])),
            None
        );
        assert_eq!(
            expected.failure(&sample(101, &[binary.clone(), text.clone()])),
            Some(r#"reply 1 was binary [1, 2], expected text "hi""#.into())
        );
        assert_eq!(
            expected.failure(&sample(101, std::slice::from_ref(&text))),
            Some("1 replies, expected 2".into())
        );
        let refused = expected.failure(&sample(403, &[])).unwrap();
        assert!(
            refused.contains("403") && refused.contains("expected 101"),
            "{refused}"
        );
    }

    #[test]
    fn a_message_is_text_or_binary_and_replies_pair_with_messages() {
        let both = WebSocketMessageSpec {
            text: Some("a".into()),
            binary: Some(vec![1]),
        };
        let err = load_messages(&[both], &at).unwrap_err().to_string();
        assert!(err.contains("exactly one of `text` and `binary`"), "{err}");
        let spec = WebSocketExpectSpec {
            replies: vec![WebSocketMessageSpec {
                text: Some("a".into()),
                binary: None,
            }],
        };
        let err = ExpectedWebSocket::load(&spec, Some(&[]), &at)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 replies for 0 messages"), "{err}");
        let err = ExpectedWebSocket::load(&spec, None, &at)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ws:// or wss://"), "{err}");
    }
}
