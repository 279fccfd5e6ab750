//! The judge shared by the checks that decide each response on its own (served by,
//! request and response contents, redirect, timeout): the first response that fails
//! is the failure, told with its number, and the loop counts every response.

use super::response::{Judge, JudgeError, Judged, ResponseVerdict};
use crate::traffic::Sample;

/// A check that judges every response alone.
pub(super) trait EachResponse: Clone + std::fmt::Debug + Send + 'static {
    /// What is wrong with this response, saying what was expected and what was seen;
    /// `None` when it passes. Never called for a failed request, which the loop
    /// reports itself.
    fn failure(&self, sample: &Sample<'_>) -> Option<String>;

    /// What passing shows, for the pass message (`all served by ns/web`).
    fn pass_attribute(&self) -> String;
}

/// The judge of an [`EachResponse`] check.
pub(super) fn judge<C: EachResponse>(check: &C) -> Result<Box<dyn Judge>, JudgeError> {
    Ok(Box::new(EachResponseJudge {
        check: check.clone(),
        responses: 0,
        first_failure: None,
    }))
}

/// Remembers the first failing response and how many were judged.
#[derive(Debug)]
struct EachResponseJudge<C> {
    check: C,
    /// The highest request number seen: the loop's size so far.
    responses: u64,
    first_failure: Option<(u64, String)>,
}

impl<C: EachResponse> Judge for EachResponseJudge<C> {
    fn observe(&mut self, request: u64, sample: &Sample<'_>) -> Judged {
        self.responses = self.responses.max(request);
        if sample.error.is_some() {
            return Judged::Fine;
        }
        match self.check.failure(sample) {
            None => Judged::Fine,
            Some(failure) => {
                self.first_failure.get_or_insert((request, failure));
                Judged::Failed
            }
        }
    }

    fn conclude(self: Box<Self>, verdict: &mut ResponseVerdict) {
        match self.first_failure {
            Some((request, failure)) => verdict.failures.push(format!(
                "{failure} (response {request} of {})",
                self.responses
            )),
            None => verdict.attributes.push(self.check.pass_attribute()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Clone, Debug)]
    struct Only200;

    impl EachResponse for Only200 {
        fn failure(&self, sample: &Sample<'_>) -> Option<String> {
            (sample.status != Some(200)).then(|| format!("got {:?}", sample.status))
        }

        fn pass_attribute(&self) -> String {
            "all fine".into()
        }
    }

    fn sample(status: u16) -> Sample<'static> {
        Sample {
            status: Some(status),
            identity: None,
            latency: Duration::ZERO,
            error: None,
            error_detail: None,
            envoy_overloaded: false,
            headers: Default::default(),
            body: None,
            websocket_replies: &[],
        }
    }

    #[test]
    fn the_first_failure_is_told_with_its_number_and_the_count() {
        let mut judge = judge(&Only200).unwrap();
        assert_eq!(judge.observe(1, &sample(200)), Judged::Fine);
        assert_eq!(judge.observe(2, &sample(503)), Judged::Failed);
        assert_eq!(judge.observe(3, &sample(404)), Judged::Failed);
        let failed = Sample {
            error: Some(crate::traffic::ErrorKind::Timeout),
            ..sample(0)
        };
        assert_eq!(judge.observe(4, &failed), Judged::Fine);
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        assert_eq!(verdict.failures, ["got Some(503) (response 2 of 4)"]);
    }

    #[test]
    fn a_pass_adds_the_attribute() {
        let mut judge = judge(&Only200).unwrap();
        judge.observe(1, &sample(200));
        let mut verdict = ResponseVerdict::default();
        judge.conclude(&mut verdict);
        assert!(verdict.passed());
        assert_eq!(verdict.attributes, ["all fine"]);
    }
}
