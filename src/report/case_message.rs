//! How reporters say why a case ended: the judge's words as they are, a typed failure
//! as one line with its causes ([`crate::error_chain::one_line`]). The JSON report's
//! `message` is this same line.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error_chain::one_line;
use crate::runner::CaseMessage;

impl fmt::Display for CaseMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseMessage::Verdict(text) | CaseMessage::Skipped(text) => f.write_str(text),
            CaseMessage::Error(error) => f.write_str(&one_line(&**error)),
            CaseMessage::SetupFailed(error) => write!(
                f,
                "the environment could not be set up: {}",
                one_line(&**error)
            ),
        }
    }
}

/// A string in the JSON report (`schemas/report.schema.json`): the line above.
impl Serialize for CaseMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use crate::report::{RunRecord, failure_block};
    use crate::runner::{CaseError, CaseMessage, CaseResult, Event, Outcome};
    use crate::targets::SendError;
    use crate::traffic::{TrafficError, TrafficErrorKind};

    /// A case that could not send: an error three causes deep, as the runner hands it
    /// over, unflattened.
    fn unsent() -> CaseResult {
        let url = url::Url::parse("https://test.devopscube.com/").unwrap();
        let error = CaseError::Send(SendError::Engine(TrafficError::new(
            &url,
            TrafficErrorKind::ReadCaFile {
                path: PathBuf::from("ca.pem"),
                source: std::io::Error::other("no such file"),
            },
        )));
        CaseResult::without_traffic(
            "ingress-tls",
            "https-host",
            Outcome::Failed,
            CaseMessage::Error(Arc::new(error)),
        )
    }

    const LINE: &str = "cannot send requests: read the CA file ca.pem for https://test.devopscube.com/: no such file";

    #[test]
    fn reporters_render_a_typed_failure_with_its_causes() {
        let result = unsent();
        assert_eq!(result.message.to_string(), LINE);
        assert!(
            failure_block(&result).contains(&format!("    why: {LINE}\n")),
            "{}",
            failure_block(&result)
        );

        let mut record = RunRecord::new();
        record.record(&Event::CaseFinished {
            result: Box::new(result),
        });
        let json = record.to_json().unwrap();
        assert_eq!(json["cases"][0]["message"], LINE);
        let junit = record.to_junit().to_string().unwrap();
        assert!(junit.contains(&format!("message=\"{LINE}\"")), "{junit}");
    }

    #[test]
    fn verdicts_and_skip_reasons_are_shown_as_written() {
        for message in [
            CaseMessage::Verdict("402 requests, all 200".into()),
            CaseMessage::Skipped("402 requests, all 200".into()),
        ] {
            assert_eq!(message.to_string(), "402 requests, all 200");
            assert_eq!(
                serde_json::to_value(&message).unwrap(),
                "402 requests, all 200"
            );
        }
    }
}
