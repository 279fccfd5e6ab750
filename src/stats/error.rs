/// Why a split test could not be set up. Every variant names the offending value so
/// a suite author can fix the route or the config without reading this module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("no backends to split traffic between")]
    NoBackends,
    #[error("all {count} backends have weight 0, so no traffic is expected anywhere")]
    AllWeightsZero { count: usize },
    #[error("backend {backend:?} is listed more than once")]
    DuplicateBackend { backend: String },
    #[error("alpha (false-failure rate) must be strictly between 0 and 1, got {value}")]
    AlphaOutOfRange { value: f64 },
    #[error("power must be strictly between 0 and 1, got {value}")]
    PowerOutOfRange { value: f64 },
    #[error("min_detectable_deviation must be strictly between 0 and 1, got {value}")]
    DeviationOutOfRange { value: f64 },
    #[error(
        "max_requests {requested} is too small: at least {minimum} requests are needed to keep alpha and power"
    )]
    MaxRequestsTooSmall { requested: u64, minimum: u64 },
}
