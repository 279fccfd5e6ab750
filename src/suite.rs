//! Suites: YAML files naming fixtures and the cases to run against them.

mod conformance;
mod error;
pub mod expect;
mod load;
mod model;

pub use conformance::{Conformance, ConformanceSpec, Profile};
pub use error::SuiteError;
pub use expect::{
    Expectation, ExpectedBackend, ExpectedCircuitBreaking, ExpectedOutlierDetection, ExpectedSplit,
    ExpectedStatus,
};
pub use load::{
    Case, Entry, MAX_CONCURRENCY, MAX_REQUESTS, Suite, discover, load_all, load_suite, parse_ref,
};
pub use model::{
    CaseSpec, CircuitBreakingSpec, ConditionSpec, ConditionStatusSpec, ConvergenceSpec, ExpectSpec,
    IdentitySpec, MirrorSpec, ObjectConditionsSpec, OutlierDetectionSpec, OverflowExpectation,
    ProtocolSpec, ReadinessSpec, ReceivedRequestSpec, ReceivedResponseSpec, RedirectSpec,
    RequestSpec, SplitSpec, SuiteSpec, TimeoutSpec, TrafficSpec, WebSocketExpectSpec,
    WebSocketMessageSpec, WebSocketRequestSpec,
};
