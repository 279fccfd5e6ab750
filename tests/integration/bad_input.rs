//! Every malformed suite or fixture is refused with an error that names the place,
//! never a panic. The CLI maps these errors to exit code 2 (see `cli.rs`).

use std::path::{Path, PathBuf};

use meshcheck::suite::expect::ResponseCheck;
use meshcheck::suite::{Expectation, load_suite};

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad-input")
        .join(name)
}

/// Loads a bad suite and returns the error text, which must start with `file:line:col`.
fn error_for(name: &str) -> String {
    let err = load_suite(&bad(name)).expect_err("a malformed suite must be refused");
    err.to_string()
}

fn assert_located(text: &str, file: &str, line: usize) {
    let prefix = format!("{file}:{line}:");
    let found = text.contains(&prefix);
    assert!(found, "expected a location `{prefix}` in: {text}");
}

#[test]
fn broken_yaml() {
    let text = error_for("broken-yaml.yaml");
    assert!(text.contains("invalid YAML"), "{text}");
    assert!(text.contains("broken-yaml.yaml:"), "{text}");
}

#[test]
fn unknown_key_points_at_the_key() {
    let text = error_for("unknown-key.yaml");
    assert_located(&text, "unknown-key.yaml", 10);
    assert!(text.contains("cases[0].trafic"), "{text}");
    assert!(text.contains("unknown field `trafic`"), "{text}");
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = error_for("wrong-type.yaml");
    assert_located(&text, "wrong-type.yaml", 11);
    assert!(text.contains("cases[0].traffic.requests"), "{text}");
}

#[test]
fn missing_fixture_file() {
    let text = error_for("missing-fixture.yaml");
    assert_located(&text, "missing-fixture.yaml", 4);
    assert!(
        text.contains("does-not-exist.yaml does not exist"),
        "{text}"
    );
}

#[test]
fn duplicate_case_names() {
    let text = error_for("duplicate-case.yaml");
    assert_located(&text, "duplicate-case.yaml", 10);
    assert!(text.contains("defined twice"), "{text}");
}

#[test]
fn absurd_request_counts() {
    let text = error_for("absurd-requests.yaml");
    assert_located(&text, "absurd-requests.yaml", 8);
    assert!(text.contains("must be between 1 and"), "{text}");
}

#[test]
fn weights_summing_to_zero() {
    let text = error_for("zero-weights.yaml");
    assert_located(&text, "zero-weights.yaml", 12);
    assert!(text.contains("sum to 0"), "{text}");
}

#[test]
fn unknown_gateway_reference() {
    let text = error_for("unknown-gateway.yaml");
    assert_located(&text, "unknown-gateway.yaml", 6);
    assert!(
        text.contains("Gateway istio-test/nope is not in the suite's fixtures"),
        "{text}"
    );
}

#[test]
fn manifest_without_kind() {
    let text = error_for("manifest-without-kind.yaml");
    assert_located(&text, "no-kind.yaml", 1);
    assert!(text.contains("missing `kind`"), "{text}");
}

#[test]
fn not_utf8() {
    let text = error_for("not-utf8.yaml");
    assert_located(&text, "not-utf8.yaml", 3);
    assert!(text.contains("not valid UTF-8"), "{text}");
}

#[test]
fn malformed_reference_grant() {
    let text = error_for("malformed-reference-grant.yaml");
    assert_located(&text, "fixtures/malformed-reference-grant.yaml", 9);
    assert!(text.contains("namespace"), "{text}");
}

#[test]
fn a_conformance_feature_outside_the_profile() {
    let text = error_for("conformance-unknown-feature.yaml");
    assert_located(&text, "conformance-unknown-feature.yaml", 8);
    assert!(
        text.contains("`HTTPRouteQueryParamMatchng` is not a feature of the GATEWAY-HTTP profile"),
        "{text}"
    );
}

#[test]
fn mirror_mistakes_point_at_the_field() {
    let cases = [
        (
            "mirror-not-echo-basic.yaml",
            10,
            "infra/text-backend does not run echo-basic",
        ),
        (
            "mirror-bad-percent.yaml",
            11,
            "must be in (0, 100], not 142",
        ),
        (
            "mirror-wrong-type.yaml",
            9,
            "field `cases[0].expect.mirror`: invalid type: string",
        ),
        (
            "mirror-unknown-key.yaml",
            11,
            "unknown field `percentage`, expected one of `service`, `percent`, `path`",
        ),
        (
            "mirror-twice.yaml",
            11,
            "Service infra/infra-backend-v1 is named twice",
        ),
        (
            "mirror-bad-path.yaml",
            11,
            "`mirror` is not a request target",
        ),
        ("mirror-empty.yaml", 9, "name at least one mirror backend"),
        (
            "mirror-with-redirect.yaml",
            11,
            "`mirror` contradicts `redirect`",
        ),
    ];
    for (file, line, message) in cases {
        let text = error_for(file);
        assert_located(&text, file, line);
        assert!(text.contains(message), "{file}: {text}");
    }
}

#[test]
fn every_bad_input_file_is_covered() {
    // A new bad-input file without a test would prove nothing.
    let covered = [
        "broken-yaml.yaml",
        "unknown-key.yaml",
        "wrong-type.yaml",
        "missing-fixture.yaml",
        "duplicate-case.yaml",
        "absurd-requests.yaml",
        "zero-weights.yaml",
        "unknown-gateway.yaml",
        "manifest-without-kind.yaml",
        "not-utf8.yaml",
        "policy-expectations.yaml",
        "two-entries.yaml",
        "policy-unknown-key.yaml",
        "served-by-not-echo-basic.yaml",
        "served-by-with-identity.yaml",
        "request-without-echo.yaml",
        "mirror-not-echo-basic.yaml",
        "mirror-bad-percent.yaml",
        "mirror-wrong-type.yaml",
        "mirror-unknown-key.yaml",
        "mirror-twice.yaml",
        "mirror-bad-path.yaml",
        "mirror-empty.yaml",
        "mirror-with-redirect.yaml",
        "request-unknown-key.yaml",
        "response-bad-header.yaml",
        "redirect-with-status-200.yaml",
        "timeout-zero.yaml",
        "timeout-wrong-type.yaml",
        "split-mixed-identities.yaml",
        "malformed-reference-grant.yaml",
        "conformance-unknown-feature.yaml",
        "conditions-wrong-status.yaml",
        "conditions-unknown-parent.yaml",
        "conditions-without-request.yaml",
        "mirror-without-request.yaml",
        "conditions-misplaced-keys.yaml",
        "conditions-twice.yaml",
        "websocket-http-url.yaml",
        "websocket-http2.yaml",
        "websocket-post.yaml",
        "websocket-reply-count.yaml",
        "websocket-binary-out-of-range.yaml",
        "websocket-message-text-and-binary.yaml",
        "websocket-with-status-200.yaml",
        "protocol-unknown.yaml",
        "apply-missing-file.yaml",
        "apply-service.yaml",
        "apply-listener-before-the-edit.yaml",
        "conditions-generation-zero.yaml",
        "conditions-generation-wrong-type.yaml",
        "conditions-gateway-class-unknown.yaml",
        "conditions-gateway-class-with-listener.yaml",
        "conditions-listeners-with-listener.yaml",
        "conditions-address-unknown-value.yaml",
        "conditions-address-with-listener.yaml",
    ];
    let mut files: Vec<String> = std::fs::read_dir(bad(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut expected: Vec<String> = covered.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(files, expected);
}

#[test]
fn the_shipped_suites_load() {
    let suites =
        meshcheck::suite::load_all(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("suites")])
            .expect("shipped suites must load");
    let canary = suites.iter().find(|s| s.name == "ingress-canary").unwrap();
    let Expectation::Responses(checks) = &canary.cases[0].expect else {
        panic!("the canary case checks its responses");
    };
    let split = checks
        .iter()
        .find_map(|check| match check {
            ResponseCheck::Split(split) => Some(split),
            _ => None,
        })
        .unwrap();
    let got: Vec<_> = split
        .backends
        .iter()
        .map(|b| (b.service.as_str(), b.weight, b.identity.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("backend-v1", 50, "hello from backend v1"),
            ("backend-v2", 50, "hello from backend v2")
        ]
    );
}

#[test]
fn overflow_without_a_slow_backend() {
    let text = error_for("policy-expectations.yaml");
    assert_located(&text, "policy-expectations.yaml", 12);
    assert!(
        text.contains("overflow needs a slow backend: give every Deployment behind Service istio-test/backend-v1 an echo `-delay`"),
        "{text}"
    );
}

#[test]
fn gateway_and_service_together() {
    let text = error_for("two-entries.yaml");
    assert_located(&text, "two-entries.yaml", 9);
    assert!(
        text.contains("give either `gateway` (north-south) or `service` (east-west), not both"),
        "{text}"
    );
}

#[test]
fn policy_expectations_reject_unknown_keys() {
    let text = error_for("policy-unknown-key.yaml");
    assert!(text.contains("unknown field `ejectonTimeout`"), "{text}");
    assert_located(&text, "policy-unknown-key.yaml", 13);
}

#[test]
fn served_by_needs_an_echo_basic_service() {
    let text = error_for("served-by-not-echo-basic.yaml");
    assert_located(&text, "served-by-not-echo-basic.yaml", 11);
    assert!(
        text.contains("the pods behind Service istio-test/backend-v1 do not run echo-basic"),
        "{text}"
    );
}

#[test]
fn served_by_refuses_another_identity_rule() {
    let text = error_for("served-by-with-identity.yaml");
    assert_located(&text, "served-by-with-identity.yaml", 8);
    assert!(text.contains("remove `identity`"), "{text}");
}

#[test]
fn request_needs_a_backend_that_echoes() {
    let text = error_for("request-without-echo.yaml");
    assert_located(&text, "request-without-echo.yaml", 12);
    assert!(
        text.contains("no backend of Gateway istio-test/istio-gateway runs echo-basic"),
        "{text}"
    );
}

#[test]
fn request_rejects_unknown_keys() {
    let text = error_for("request-unknown-key.yaml");
    assert_located(&text, "request-unknown-key.yaml", 10);
    assert!(text.contains("unknown field `paths`"), "{text}");
}

#[test]
fn response_header_names_are_checked() {
    let text = error_for("response-bad-header.yaml");
    assert_located(&text, "response-bad-header.yaml", 14);
    assert!(text.contains("invalid header name `X Bad`"), "{text}");
}

#[test]
fn a_status_that_no_redirect_has_contradicts_redirect() {
    let text = error_for("redirect-with-status-200.yaml");
    assert_located(&text, "redirect-with-status-200.yaml", 11);
    assert!(
        text.contains("`status: 200` contradicts `redirect`: a redirect is a 3xx"),
        "{text}"
    );
}

#[test]
fn a_timeout_needs_a_bound() {
    let text = error_for("timeout-zero.yaml");
    assert_located(&text, "timeout-zero.yaml", 12);
    assert!(text.contains("`within` must be more than zero"), "{text}");
    let text = error_for("timeout-wrong-type.yaml");
    assert_located(&text, "timeout-wrong-type.yaml", 12);
    assert!(text.contains("cases[0].expect.timeout.within"), "{text}");
}

#[test]
fn a_split_cannot_mix_identity_kinds() {
    let text = error_for("split-mixed-identities.yaml");
    assert_located(&text, "split-mixed-identities.yaml", 9);
    assert!(text.contains("the split mixes identity kinds"), "{text}");
}

#[test]
fn conditions_entries_are_checked_where_they_are_written() {
    let text = error_for("conditions-wrong-status.yaml");
    assert_located(&text, "conditions-wrong-status.yaml", 12);
    assert!(
        text.contains("cases[0].expect.conditions[0].conditions[0].status"),
        "{text}"
    );
    let text = error_for("conditions-unknown-parent.yaml");
    assert_located(&text, "conditions-unknown-parent.yaml", 11);
    assert!(
        text.contains("HTTPRoute istio-test/backend-route has no parentRef to Gateway istio-test/istio-gateway with sectionName https"),
        "{text}"
    );
    let text = error_for("conditions-without-request.yaml");
    assert_located(&text, "conditions-without-request.yaml", 9);
    assert!(
        text.contains("`status` judges responses, and a case without `request` sends none"),
        "{text}"
    );
    // A mirror is judged from the case's own requests: without any, it would pass
    // unseen.
    let text = error_for("mirror-without-request.yaml");
    assert_located(&text, "mirror-without-request.yaml", 10);
    assert!(
        text.contains("`mirror` judges responses, and a case without `request` sends none"),
        "{text}"
    );
    let text = error_for("conditions-misplaced-keys.yaml");
    assert_located(&text, "conditions-misplaced-keys.yaml", 11);
    assert!(
        text.contains("`attachedRoutes` goes with `listener` only"),
        "{text}"
    );
    let text = error_for("conditions-twice.yaml");
    assert_located(&text, "conditions-twice.yaml", 14);
    assert!(
        text.contains("condition `Accepted` is expected twice"),
        "{text}"
    );
}

#[test]
fn websocket_and_protocol_keys_are_checked_where_they_are_written() {
    let text = error_for("websocket-http-url.yaml");
    assert_located(&text, "websocket-http-url.yaml", 12);
    assert!(
        text.contains("`websocket` needs a ws:// or wss:// URL"),
        "{text}"
    );
    let text = error_for("websocket-http2.yaml");
    assert_located(&text, "websocket-http2.yaml", 11);
    assert!(
        text.contains("a WebSocket session is upgraded from HTTP/1.1"),
        "{text}"
    );
    let text = error_for("websocket-post.yaml");
    assert_located(&text, "websocket-post.yaml", 11);
    assert!(
        text.contains("a WebSocket session opens with a GET (RFC 6455), not POST"),
        "{text}"
    );
    let text = error_for("websocket-reply-count.yaml");
    assert_located(&text, "websocket-reply-count.yaml", 16);
    assert!(text.contains("1 replies for 2 messages"), "{text}");
    let text = error_for("websocket-binary-out-of-range.yaml");
    assert_located(&text, "websocket-binary-out-of-range.yaml", 12);
    assert!(
        text.contains("cases[0].request.websocket.messages[0].binary"),
        "{text}"
    );
    let text = error_for("websocket-message-text-and-binary.yaml");
    assert_located(&text, "websocket-message-text-and-binary.yaml", 14);
    assert!(
        text.contains("a WebSocket message is exactly one of `text` and `binary`"),
        "{text}"
    );
    let text = error_for("websocket-with-status-200.yaml");
    assert_located(&text, "websocket-with-status-200.yaml", 13);
    assert!(
        text.contains("`status: 200` contradicts `websocket`: an upgrade is a 101"),
        "{text}"
    );
    let text = error_for("protocol-unknown.yaml");
    assert_located(&text, "protocol-unknown.yaml", 11);
    assert!(text.contains("cases[0].request.protocol"), "{text}");
}

/// A case's `apply` and the generation, listener and GatewayClass checks it goes with:
/// a missing edit file, an edit of a kind `apply` does not take (located in the edit
/// file), a listener named before the edit that adds it, a generation of 0 or not a
/// number, a GatewayClass not in the fixtures or with a listener's key, and
/// `listeners` on a listener entry.
#[test]
fn apply_and_generation_keys_are_checked_where_they_are_written() {
    let text = error_for("apply-missing-file.yaml");
    assert_located(&text, "apply-missing-file.yaml", 9);
    assert!(text.contains("no-such-edit.yaml does not exist"), "{text}");
    let text = error_for("apply-service.yaml");
    assert_located(&text, "edit-service.yaml", 2);
    assert!(
        text.contains("Service istio-test/backend-v1: a case's `apply` edits Gateways, HTTPRoutes and GatewayClasses only"),
        "{text}"
    );
    let text = error_for("apply-listener-before-the-edit.yaml");
    assert_located(&text, "apply-listener-before-the-edit.yaml", 11);
    assert!(
        text.contains("Gateway istio-test/istio-gateway has no listener `extra`"),
        "{text}"
    );
    let text = error_for("conditions-generation-zero.yaml");
    assert_located(&text, "conditions-generation-zero.yaml", 11);
    assert!(text.contains("generations start at 1"), "{text}");
    let text = error_for("conditions-generation-wrong-type.yaml");
    assert_located(&text, "conditions-generation-wrong-type.yaml", 11);
    assert!(
        text.contains("cases[0].expect.conditions[0].generation"),
        "{text}"
    );
    let text = error_for("conditions-gateway-class-unknown.yaml");
    assert_located(&text, "conditions-gateway-class-unknown.yaml", 10);
    assert!(
        text.contains("GatewayClass istio is not in the suite's fixtures"),
        "{text}"
    );
    let text = error_for("conditions-gateway-class-with-listener.yaml");
    assert_located(&text, "conditions-gateway-class-with-listener.yaml", 11);
    assert!(
        text.contains("`listener` does not apply to a GatewayClass"),
        "{text}"
    );
    let text = error_for("conditions-listeners-with-listener.yaml");
    assert_located(&text, "conditions-listeners-with-listener.yaml", 12);
    assert!(
        text.contains("`listeners` lists a Gateway's listeners: give it without `listener`"),
        "{text}"
    );
}

#[test]
fn an_address_check_is_a_gateways_and_says_assigned() {
    let text = error_for("conditions-address-unknown-value.yaml");
    assert_located(&text, "conditions-address-unknown-value.yaml", 11);
    assert!(
        text.contains("`address: 10.0.0.7`: the one value is `assigned`"),
        "{text}"
    );
    let text = error_for("conditions-address-with-listener.yaml");
    assert_located(&text, "conditions-address-with-listener.yaml", 12);
    assert!(
        text.contains("a Gateway has addresses, its listeners do not"),
        "{text}"
    );
}
