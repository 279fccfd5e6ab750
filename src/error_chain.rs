//! The one renderer of an error and its causes. Errors stay typed (each cause is a
//! `source()`) until a reporter or the CLI needs text; then they are flattened here,
//! and nowhere else. A leaf module, so every layer may use it without depending on
//! `report` (which re-exports it): the kube target flattens kube-rs errors here the
//! moment it redacts them, because their text may hold credentials.

use std::error::Error;

/// An error and its causes on one line, `outer: cause: root`, for case messages,
/// setup failures and report fields. A cause whose text its parent already shows (as
/// some client libraries' errors do) is not repeated.
pub fn one_line(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

/// An error as the CLI prints it: `error: outer`, then each cause on its own line
/// under "Caused by:", as cargo and nextest do.
pub fn caused_by(err: &dyn Error) -> String {
    let mut text = format!("error: {err}\n");
    let mut source = err.source();
    if source.is_some() {
        text.push_str("\nCaused by:\n");
    }
    while let Some(cause) = source {
        text.push_str(&format!("    {cause}\n"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to start Envoy")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("failed to bind 127.0.0.1:80")]
    struct Middle(#[source] std::io::Error);

    fn sample() -> Outer {
        Outer(Middle(std::io::Error::other("permission denied")))
    }

    #[test]
    fn one_line_joins_every_cause() {
        assert_eq!(
            one_line(&sample()),
            "failed to start Envoy: failed to bind 127.0.0.1:80: permission denied"
        );
    }

    #[test]
    fn one_line_does_not_repeat_a_cause_its_parent_already_shows() {
        #[derive(Debug, thiserror::Error)]
        #[error("request failed: {0}")]
        struct Repeats(#[source] std::io::Error);
        let err = Repeats(std::io::Error::other("connection reset"));
        assert_eq!(one_line(&err), "request failed: connection reset");
    }

    #[test]
    fn caused_by_puts_each_cause_on_its_own_line() {
        assert_eq!(
            caused_by(&sample()),
            "error: failed to start Envoy\n\nCaused by:\n    failed to bind 127.0.0.1:80\n    permission denied\n"
        );
        assert_eq!(
            caused_by(&std::io::Error::other("no such file")),
            "error: no such file\n"
        );
    }
}
