//! `expect.status`: every response has this status.

use super::response::{Check, Judge, JudgeError, Judged, ResponseVerdict, describe_response};
use crate::manifest::SourceLocation;
use crate::suite::error::SuiteError;
use crate::traffic::Sample;

/// The status every response must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedStatus {
    pub status: u16,
}

impl ExpectedStatus {
    /// `at` locates `expect.status`.
    pub(super) fn load(status: u16, at: &SourceLocation) -> Result<Self, SuiteError> {
        if !(100..=599).contains(&status) {
            return Err(SuiteError::Invalid {
                location: at.clone(),
                message: format!("{status} is not an HTTP status"),
            });
        }
        Ok(ExpectedStatus { status })
    }
}

impl Check for ExpectedStatus {
    /// The expected status is the most direct sign that the route serves the case.
    fn readiness_rank(&self) -> u8 {
        0
    }

    fn ready(&self, sample: &Sample<'_>) -> bool {
        sample.status == Some(self.status)
    }

    fn judge(&self) -> Result<Box<dyn Judge>, JudgeError> {
        Ok(Box::new(StatusJudge {
            expected: self.status,
            first_unexpected: None,
        }))
    }
}

/// Remembers the first response with another status.
#[derive(Debug)]
pub(super) struct StatusJudge {
    expected: u16,
    first_unexpected: Option<String>,
}

impl Judge for StatusJudge {
    /// A failed request has no status to judge.
    fn observe(&mut self, request: u64, sample: &Sample<'_>) -> Judged {
        if sample.error.is_some() || sample.status == Some(self.expected) {
            return Judged::Fine;
        }
        let expected = self.expected;
        self.first_unexpected.get_or_insert_with(|| {
            format!(
                "request {request} got {} (expected {expected})",
                describe_response(sample)
            )
        });
        Judged::Failed
    }

    fn conclude(self: Box<Self>, verdict: &mut ResponseVerdict) {
        match self.first_unexpected {
            Some(failure) => verdict.failures.push(failure),
            None => verdict.attributes.push(format!("all {}", self.expected)),
        }
    }
}
