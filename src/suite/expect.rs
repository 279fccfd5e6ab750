//! What a case expects, resolved once by the loader against the fixtures, and how each
//! kind of expectation judges what the traffic shows.
//!
//! Two families. Response checks ([`ResponseCheck`]: status, split, servedBy,
//! request, response, redirect, timeout, mirror, websocket) judge every
//! response of one measured request loop and combine. Policy probes (circuit
//! breaking, outlier detection) drive their own traffic from the runner
//! (`runner::policy`) and stand alone. Each kind has its own module here: its loader
//! (spec and fixtures to the resolved form, with located errors), what counts as a
//! good response while the data plane converges, and, for a response check, its judge
//! and the lines it adds to the report.
//!
//! Adding a response check (say, "a response header is present"):
//! 1. its key and spec struct in `suite/model.rs` (`ExpectSpec`), re-exported in
//!    `suite.rs`;
//! 2. in `expectation.rs`: its variant of `Given`, with its entries in `Given::KEYS`,
//!    `Given::all`, `Given::key` and `Given::stands_alone`, and its arm in
//!    `Expectation::load`, which calls its loader and pushes its [`ResponseCheck`];
//! 3. a module here (`mod` and `pub use` above) with the resolved type, its loader,
//!    `impl Check` (readiness, and a fresh judge) and `impl Judge` (what each
//!    response does; the failure reason or the pass message's fragment in `conclude`,
//!    which is all the report shows of it);
//! 4. its variant in [`ResponseCheck`] and the arm of `ResponseCheck::check`.
//!
//! That is all, also for a check on a response header: `Check::response_headers`
//! declares the headers it reads, the engine (`traffic/worker.rs`) and the in-mesh
//! client (`targets/kube/mesh_client.rs`, one curl `%header{..}` field each) keep
//! exactly those, and the judge reads them from `Sample::headers`. A check on the body
//! says so in `Check::response_body` and reads `Sample::body` (kept only then); a
//! check on which echo-basic backend answered says so in
//! `Check::reads_echo_basic_identity` and reads `Sample::identity`. A check that
//! decides each response alone implements `each_response::EachResponse` and gets its
//! judge from there. A check that needs something of the response no
//! [`Sample`](crate::traffic::Sample) carries yet is a change to the traffic layer
//! first, made once for every later kind.
//!
//! Otherwise the runner needs no change: it asks [`ResponseJudge`]. Nor do the
//! reporters: what a check concludes reaches every report as the case's message. Only
//! a check that wants a section of its own in the reports, as the split test's
//! statistics have, adds a field to `ResponseVerdict` and to the runner's
//! `CaseResult`: that field is the JSON report's schema
//! (`schemas/report.schema.json`), a published format that changes on purpose, not as
//! a side effect of a new kind.
//!
//! A new policy probe is a variant of [`Expectation`] instead, and the runner's
//! `match` on it (in `runner/case.rs`) names the module in `runner::policy` that
//! drives its traffic. `docs/architecture.md` has the whole recipe, tests included.

mod circuit_breaking;
mod conditions;
mod each_response;
mod echo_basic;
mod expectation;
mod headers;
mod mirror;
mod outlier_detection;
mod received_request;
mod received_response;
mod redirect;
mod response;
mod served_by;
mod service_pods;
mod split;
mod status;
mod timeout;
mod websocket;

pub use circuit_breaking::ExpectedCircuitBreaking;
pub use conditions::{
    ExpectedCondition, ExpectedConditions, ExpectedObjectConditions, StatusTarget,
};
pub use expectation::{Expectation, LoadContext};
pub use headers::HeaderExpectations;
pub use mirror::{ExpectedMirror, MirrorBackend, MirrorJudge, Received, Receiver};
pub use outlier_detection::ExpectedOutlierDetection;
pub use received_request::ExpectedRequest;
pub use received_response::ExpectedResponse;
pub use redirect::ExpectedRedirect;
pub use response::{
    JudgeError, ResponseCheck, ResponseChecks, ResponseJudge, ResponseProgress, ResponseVerdict,
    describe_response,
};
pub use served_by::ExpectedServedBy;
pub use split::{ExpectedBackend, ExpectedSplit};
pub use status::ExpectedStatus;
pub use timeout::{ExpectedTimeout, TIMEOUT_STATUS};
pub use websocket::ExpectedWebSocket;
pub(in crate::suite) use websocket::load_messages as load_websocket_messages;
